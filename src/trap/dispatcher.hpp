// trap/dispatcher.hpp: the trap layer's internal interface: the state the signal-path dispatcher
// (dispatcher_sig.cpp) shares with the code that installs it (install.cpp), and what the layers above
// it (thread, report, region and the backends) may ask of an active dispatch: its epoch, turning a fault
// into SIGBUS, sleeping outside the epoch, the interrupted stack, the thread's stack bounds. Not public.
#pragma once

#include <atomic>
#include <cstdint>
#include <signal.h>

#include "core/epoch.hpp"
#include "faultline/trap.hpp"

namespace faultline::trap {

constexpr int kMaxSig = 32;           // classic signals only: faultline takes synchronous traps
constexpr unsigned kMaxHandlers = 64;

struct HandlerSlot {
  std::atomic<FaultHandler> fn{nullptr};  // published last (release); null = free
  std::atomic<void*> data{nullptr};
  std::atomic<unsigned> signals{0};
  std::atomic<FaultDescriber> describe{nullptr};
  std::uint32_t generation = 0;  // guarded by the install mutex
};

struct SignalState {
  std::atomic<bool> installed{false};
  // The action that was there before faultline, double-buffered: writers (under the install mutex) fill
  // the other slot, flip prev_idx, then wait out readers with the epoch before reusing a slot.
  struct sigaction prev[2] = {};
  std::atomic<unsigned> prev_idx{0};
  // The previous action had SA_RESETHAND and has been called once: it is now SIG_DFL.
  std::atomic<bool> prev_reset{false};
  // resolved is not counted: it is seen - passed (see counters()).
  std::atomic<std::uint64_t> seen{0}, passed{0}, overflows{0};
};

// Called for a fault that is about to end the process (the previous action is SIG_DFL, or SIG_IGN for a
// kernel fault), before it does. Set by the crash report when enabled. Runs in signal context.
// `overflow` is set for a stack overflow; `cause` (or null) is why faultline failed the access (a
// provider or pager that could not supply the page).
using FatalHook = void (*)(const FaultContext& ctx, const StackOverflow* overflow, const char* cause);

struct DispatcherState {
  HandlerSlot slots[kMaxHandlers];
  std::atomic<unsigned> slot_limit{0};  // slots [0, slot_limit) may be in use
  core::EpochDomain epoch;
  SignalState sig[kMaxSig + 1];
  std::atomic<StackOverflowHandler> overflow_fn{nullptr};
  std::atomic<void*> overflow_data{nullptr};
  std::atomic<FatalHook> fatal_hook{nullptr};
  std::atomic<int> log_fd{2};  // where faultline's own one-line diagnostics go
};

extern DispatcherState g_state;

// The sigaction handler faultline installs.
extern "C" void faultline_trap_entry(int sig, siginfo_t* info, void* uc);

constexpr unsigned signal_bit(int sig) noexcept {
  switch (sig) {
    case SIGSEGV: return trap_segv;
    case SIGBUS: return trap_bus;
    case SIGILL: return trap_ill;
    case SIGFPE: return trap_fpe;
    case SIGTRAP: return trap_trap;
    case SIGABRT: return trap_abrt;
    default: return 0;
  }
}

// Lets every registered describer describe `addr`, passing each non-empty description to `sink`.
// Async-signal-safe; call only from inside a dispatch (the epoch protects the handler slots).
using DescribeSink = void (*)(void* ctx, const char* text, std::size_t len);
void describe_address(std::uintptr_t addr, DescribeSink sink, void* ctx) noexcept;

// Ends the process by `sig` with the default action (async-signal-safe). `reexecute`: the caller will
// return from the handler so that the faulting instruction raises the signal again; otherwise the
// signal is raised now.
void die_by_default(int sig, bool reexecute) noexcept;

// Makes the fault in `ctx` end as SIGBUS (BUS_ADRERR) at the same address, the signal the kernel raises
// for a file-backed page it cannot supply: queues that SIGBUS to the calling thread, unblocks it in the
// context the handler returns to, and remembers `cause` (copied) for the crash report. The caller then
// returns `resolved`: the SIGBUS is delivered before the faulting instruction runs again, and faultline
// hands it straight to the report and the previous SIGBUS action (regions do not see it again). With
// SIG_DFL the process dies by SIGBUS. Async-signal-safe; call only from a fault handler.
void fail_with_sigbus(FaultContext& ctx, const char* cause) noexcept;

// For a fault handler about to sleep (waiting for a pager): leaves the trap epoch so that writers
// waiting for dispatches (region registration, remove_handler) are not held up for the whole wait;
// resume_epoch() enters it again. In between the handler must not touch what the epoch protects
// (handler slots, the region table, a region) unless it has pinned that object by other means.
// Async-signal-safe; call only from a fault handler, in pairs.
void suspend_epoch() noexcept;
void resume_epoch() noexcept;
// os::futex_wait_until() between suspend_epoch() and resume_epoch(): for a fault handler that sleeps
// for a fill. The caller keeps what it needs alive by other means (a region Pin).
bool wait_outside_epoch(std::atomic<std::uint32_t>& w, std::uint32_t expected, std::int64_t deadline_ns) noexcept;

// The calling thread's stack: [lo, hi) and the guard area below lo, for stack-overflow detection. The
// thread layer records it when a thread attaches (zeros when it detaches). Async-signal-safe.
struct StackBounds {
  std::uintptr_t lo = 0, hi = 0;
  std::size_t guard = 0;
  std::uintptr_t altstack_lo = 0, altstack_hi = 0;  // its alternate signal stack at attach
};
void set_thread_stack(const StackBounds& b) noexcept;
// The calling thread's alternate signal stack [*lo, *hi), if `addr` lies on it: from the bounds recorded
// at attach when `addr` is within them (no system call: the fault path asks), else from sigaltstack (a
// thread that never attached, or set another stack since). False when `addr` is not on it (or there is
// none). Async-signal-safe.
bool altstack_around(std::uintptr_t addr, std::uintptr_t* lo, std::uintptr_t* hi) noexcept;
// In a forked child: the dispatches of the parent's other threads do not exist here; only the calling
// thread's (if it forked from a handler) is counted. Called by the fork hook install() registers.
void reset_epoch_after_fork() noexcept;
// The main thread's stack, recorded by install() (install.cpp); used for a main thread that never
// attached.
extern std::atomic<std::uintptr_t> g_main_stack_lo;
extern std::atomic<std::uintptr_t> g_main_stack_hi;
void record_main_stack() noexcept;

// The stack pointer of the code the calling thread's active dispatch interrupted, or 0 when no
// dispatch is active. Async-signal-safe.
std::uintptr_t interrupted_sp() noexcept;

// The context of the calling thread's active dispatch (also while it runs the previous action), or
// null. Async-signal-safe.
const FaultContext* active_context() noexcept;

// Waits (outside signal context) until every dispatch that started before the call has finished, so that
// what it may have read can be freed. Gives up with Errc::timed_out after 10 s.
Result<void> wait_for_dispatches(const char* what);

}  // namespace faultline::trap
