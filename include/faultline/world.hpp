// faultline/world.hpp: stopping every attached thread, looking at them, and resuming them.
//
// world::stop() suspends every other attached thread (faultline/thread.hpp) in parallel, one signal
// each, and returns once each has acknowledged with its context saved; world::resume() restarts them.
// A garbage collector then scans roots with world::scan_roots(), which gives every word of every
// stopped thread's registers (SIMD lanes included) and stack, and the caller's own.
//
// Protocol. Each stop has an epoch number. The signal handler of a thread copies its context (the
// general registers and the whole FP/SIMD area, not a pointer into the signal frame), publishes the
// epoch as its acknowledgement (a per-thread futex word, no shared counter), and sleeps until the resume
// epoch reaches it. stop() waits for each thread's acknowledgement and re-sends the signal every
// `resend_after` (a signal can be lost, e.g. coalesced with a pending one); a thread that has not
// answered within `timeout` is named in the error (tid, the PC and system call from
// /proc/<tid>/syscall) and the threads already stopped are resumed. A resume cannot overtake a stop (a
// thread that sees a stop signal twice acknowledges once), and two threads that call stop() at once are
// serialised.
//
// Blocking regions. A thread about to block in a system call opens a BlockingRegion: a stop does not
// signal it but records the stack pointer and registers it saved on entry; if it leaves the region
// while the world is stopped, it waits at the exit until resume().
//
// Threads that attach or detach (and threads that exit) during a stop wait for resume() in
// attach/detach: the stopping thread holds the registry lock from stop() to resume(). So: call
// resume() on the thread that called stop(), and between the two do not attach, detach or register
// regions from that thread (a thread stopped inside a fault handler holds the epoch that region
// registration waits for). scan_roots and for_each_stopped neither allocate nor lock.
//
// The signal: SIGRTMIN+4 by default (configurable); stop() checks that no other handler owns it.
#pragma once

#include <chrono>
#include <cstdint>

#include "faultline/context.hpp"
#include "faultline/result.hpp"

namespace faultline::world {

struct StopOptions {
  int signal = 0;  // 0: SIGRTMIN + 4. Fixed by the first stop() of the process.
  std::chrono::milliseconds resend_after{10};
  std::chrono::milliseconds timeout{5000};
};

// A stopped thread, valid until resume().
struct StoppedThread {
  long tid;
  const FaultContext* context;   // copied registers (general + FP/SIMD); context->signal() is 0
  std::uintptr_t stack_lo;       // the live part of its stack: [stack_lo, stack_hi), from the stack
  std::uintptr_t stack_hi;       //   pointer minus the red zone to the stack's base
  std::uintptr_t altstack_lo;    // its alternate signal stack in use when stopped on it, else 0
  std::uintptr_t altstack_hi;
  bool in_blocking_region;       // stopped by its BlockingRegion (context: the registers saved on entry)
};

// Stops every other attached thread. The caller must be attached. Errc::busy if the world is already
// stopped (by this thread) or from inside a fault handler; Errc::already_exists if another handler owns
// the signal; Errc::timed_out naming the thread that did not answer. Thread-safe; not async-signal-safe.
Result<void> stop(const StopOptions& opts = {});

// Resumes the threads stopped by this thread's stop(). Errc::invalid_argument if it did not stop them.
Result<void> resume();

// True while the world is stopped (by any thread).
bool stopped() noexcept;

// Visits each stopped thread. Only between stop() and resume(), on the stopping thread. No allocation.
using ThreadVisitor = void (*)(const StoppedThread& t, void* data);
Result<void> for_each_stopped(ThreadVisitor fn, void* data);

enum class RootKind { registers, simd, stack, altstack };
// Gives every word that may hold a pointer: for each stopped thread its general registers, its FP/SIMD
// state, its stack range and its alternate-stack range when it was stopped on it; then the calling
// thread's own registers and stack. Ranges are word-aligned. No allocation. Under AddressSanitizer the
// visitor must read stack words with __attribute__((no_sanitize("address"))): stacks hold redzones.
using RootVisitor = void (*)(const std::uintptr_t* begin, const std::uintptr_t* end, RootKind kind, long tid,
                             void* data);
Result<void> scan_roots(RootVisitor fn, void* data);

// The number of stop signals sent and re-sent so far (for tests and benchmarks).
std::uint64_t signals_sent() noexcept;

namespace testing {
// Makes the next `n` stop signals delivered to threads be ignored, as if lost, to exercise the resend.
void drop_next_signals(unsigned n) noexcept;
}  // namespace testing

}  // namespace faultline::world

namespace faultline {

// The same without RAII (for C): enter returns false (and does nothing) on an unattached thread; each
// successful enter needs one leave, which may wait for resume().
bool enter_blocking_region() noexcept;
void leave_blocking_region() noexcept;

// RAII: the calling thread is about to block (a system call, a lock wait) and touches no memory a
// stopping thread cares about until the region ends. Without an attachment it does nothing. Nests.
class [[nodiscard]] BlockingRegion {
 public:
  BlockingRegion() noexcept;
  ~BlockingRegion();
  BlockingRegion(const BlockingRegion&) = delete;
  BlockingRegion& operator=(const BlockingRegion&) = delete;

 private:
  bool active_ = false;
};

}  // namespace faultline
