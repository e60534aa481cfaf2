// faultline/trap.hpp: the process-wide trap dispatcher.
//
// faultline takes SIGSEGV and SIGBUS (and, on request, SIGILL, SIGFPE and SIGTRAP) once per process.
// Each fault the kernel raises is offered, in signal context, to the handlers registered here, in
// registration order; the first that answers `resolved` ends it and the faulting instruction runs
// again (or the thread resumes wherever the handler moved it). A fault nobody resolves goes to the
// action that was installed before faultline, with that action's own semantics:
//   - an SA_SIGINFO handler is called with the same signal number, siginfo and context, with its own
//     sa_mask (and the signal itself unless SA_NODEFER) blocked during the call; SA_RESETHAND is honoured;
//   - a plain handler is called with the signal number;
//   - SIG_DFL ends the process by the same signal: a kernel fault is re-executed with the default action
//     in place, so the core dump and the parent's wait status are those of the original fault; a signal
//     sent by kill/tgkill/sigqueue is raised again;
//   - SIG_IGN: a signal sent by another process is ignored; a kernel fault kills the process, as the
//     kernel does for an ignored synchronous fault.
// A signal sent by a process (si_code <= 0) is never offered to the handlers: a forged SIGSEGV cannot
// make faultline "resolve" a fault in one of its regions.
//
// A fault that happens while a faultline handler runs on the same thread (nested fault) writes a report
// of both faults to stderr (or the report fd) and ends in the default action: it never recurses or hangs.
// errno is saved on entry and restored on exit of every dispatch.
//
// Handler functions run in signal context: they must be async-signal-safe (no malloc, no locks that
// the interrupted code may hold, no stdio, no exceptions). If a handler leaves by longjmp, it must call
// leave_handler() first.
#pragma once

#include <cstdint>

#include "faultline/context.hpp"
#include "faultline/result.hpp"

namespace faultline {

// A handler's answer.
enum class Disposition : std::uint8_t {
  declined,  // not mine, or I could not resolve it: offer it to the next handler
  resolved,  // done: resume the thread (the instruction runs again unless the context was changed)
};

// A fault handler. Runs in signal context. `data` is what was given to add_handler().
using FaultHandler = Disposition (*)(FaultContext& ctx, void* data);

// Optional: describes `addr` for a crash report (e.g. "region 'heap' [..) guard"), writing at most
// `cap` bytes to `buf` (NUL-terminated). Returns the length written, 0 if the address is not its own.
// Runs in signal context.
using FaultDescriber = std::size_t (*)(std::uintptr_t addr, char* buf, std::size_t cap, void* data);

// Signals faultline can take, as a bit set.
enum TrapSignal : unsigned {
  trap_segv = 1u << 0,
  trap_bus = 1u << 1,
  trap_ill = 1u << 2,
  trap_fpe = 1u << 3,
  trap_trap = 1u << 4,
  trap_abrt = 1u << 5,  // abort(), a failed assert, an uncaught C++ exception: reported, then the
                        // previous action (never a handler: SIGABRT is not a fault)
  trap_memory = trap_segv | trap_bus,  // the default
  trap_all = trap_segv | trap_bus | trap_ill | trap_fpe | trap_trap,  // the faults and traps (not SIGABRT)
};

struct InstallOptions {
  // Which signals to take. install() may be called again with more signals; it never drops any.
  unsigned signals = trap_memory;
  // Set up an alternate signal stack for the calling thread (needed to survive its stack overflow).
  bool altstack_for_caller = true;
};

// Takes the signals in `opts.signals`, recording the actions installed before as the "previous"
// actions. Idempotent and thread-safe. Also attaches the calling thread (alternate signal stack,
// stack bounds for overflow detection) unless opts.altstack_for_caller is false, and enables the crash
// report when the environment variable FAULTLINE_REPORT is set (see report.hpp).
// Not async-signal-safe.
Result<void> install(const InstallOptions& opts = {});

// Restores exactly the actions that were there before install(). Fails with Errc::overridden, changing
// nothing, if another component has since installed its own handler over faultline's for one of the
// signals (restoring would remove the newcomer); `force` restores anyway. Fails with Errc::busy when
// called from inside a fault handler. Registered handlers stay registered (they run again after the
// next install()). Not async-signal-safe; thread-safe.
Result<void> uninstall(bool force = false);

// True when faultline holds at least one signal. Async-signal-safe.
bool installed() noexcept;

// Bit set (TrapSignal) of the signals faultline installed that now carry someone else's action.
// Thread-safe; not async-signal-safe (queries sigaction through libc).
unsigned overridden();

// For each overridden signal: makes the newcomer's action faultline's "previous" action and installs
// faultline's handler again, so faults reach faultline first and chain to the newcomer.
Result<void> reassert();

// Opaque handle of a registered handler.
struct HandlerId {
  std::uint32_t slot = ~0u;
  std::uint32_t generation = 0;
};

// Registers `fn` for the signals in `signals` (TrapSignal bits). At most 64 handlers at once
// (Errc::no_space beyond). Thread-safe; may be called before install(). Not async-signal-safe.
Result<HandlerId> add_handler(FaultHandler fn, void* data, unsigned signals = trap_memory,
                              FaultDescriber describe = nullptr);

// Unregisters a handler. On return no thread is running it any more (it waits for handlers in flight
// to leave), so `data` may be freed. Errc::busy from inside a fault handler; Errc::not_found for a
// stale id. Not async-signal-safe.
Result<void> remove_handler(HandlerId id);

// Information about a stack overflow, for the overflow hook.
struct StackOverflow {
  std::uintptr_t fault_address;
  std::uintptr_t stack_lo, stack_hi;  // the overflowing thread's stack
  long tid;
};
// Called in signal context (on the alternate stack) when a thread overflows its stack, before the
// report. `resolved` means the hook took care of it (it must then have changed the context, e.g. to
// leave by siglongjmp after calling leave_handler()); `declined` goes on to the report and the previous
// action. Pass null to remove the hook.
using StackOverflowHandler = Disposition (*)(FaultContext& ctx, const StackOverflow& info, void* data);
Result<void> set_stack_overflow_handler(StackOverflowHandler fn, void* data);

// Per-signal counters: faults seen, resolved by a handler, passed on to the previous action, and stack
// overflows recognised. Readable at any time from any thread; async-signal-safe. `resolved` is
// `seen - passed`: a handler that leaves by longjmp counts as resolving its fault, and a fault still being
// handled when you read counts as resolved until it is passed on.
struct TrapCounters {
  std::uint64_t seen = 0;
  std::uint64_t resolved = 0;
  std::uint64_t passed = 0;
  std::uint64_t stack_overflows = 0;
};
TrapCounters counters(int sig) noexcept;

// Call from a fault handler (or stack-overflow hook, or a previous handler reached through faultline)
// that is about to leave by longjmp/siglongjmp instead of returning: faultline forgets that the thread
// is inside a handler. Async-signal-safe.
void leave_handler() noexcept;

// True while the calling thread runs inside faultline's signal handler. Async-signal-safe.
bool in_handler() noexcept;

// The context of the fault the calling thread is handling in faultline's dispatcher (also while the
// previous action runs, called by faultline), or null. Lets code that runs as the previous action (a
// crash reporter, a runtime's own handler) reach faultline's view of the fault. Async-signal-safe.
const FaultContext* active_fault() noexcept;

}  // namespace faultline
