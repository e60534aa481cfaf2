// faultline/preempt.hpp: per-thread preemption on a CPU-time or wall-clock budget.
//
// enable(budget, handler) arms a one-shot timer for the calling thread; when the budget is spent the
// thread is interrupted by a signal and `handler` runs in signal context on that thread, with the
// interrupted context. To run ordinary code (a scheduler that switches user-level threads), the handler
// calls inject_call() (faultline/inject.hpp). enable() again re-arms.
//
// Clocks. Clock::cpu_time counts the thread's CPU time (timer_create with CLOCK_THREAD_CPUTIME_ID): such
// timers fire only on the scheduler tick (4 ms on a 250 Hz kernel; `faultline info` measures it), so a
// budget below the tick is late by up to a tick. Clock::wall counts wall-clock time with a
// thread-targeted CLOCK_MONOTONIC timer (SIGEV_THREAD_ID): precise to tens of microseconds, but it also
// runs while the thread is descheduled.
//
// Costs. The first enable() on a thread creates its timer (timer_create, counted against
// RLIMIT_SIGPENDING: a clear Errc::no_space when the limit would be exceeded). After that enable() is
// one system call (timer_settime) and disable() none: it clears a per-thread flag; a budget that
// expires while disabled is remembered (one pending flag per thread, so expiries do not pile up) and
// delivered at the next enable(), which then raises the signal at once instead of arming the timer.
// Timers are deleted when the thread detaches or exits.
//
// The calling thread must be attached (faultline/thread.hpp). The signal is SIGRTMIN+5 by default.
#pragma once

#include <chrono>
#include <cstddef>

#include "faultline/context.hpp"
#include "faultline/result.hpp"

namespace faultline::preempt {

enum class Clock { cpu_time, wall };

// Runs in signal context on the preempted thread.
using Handler = void (*)(FaultContext& ctx, void* data);

// Arms the calling thread's budget. Errc::not_installed if the thread is not attached;
// Errc::invalid_argument for a budget <= 0 or a null handler; Errc::no_space at the RLIMIT_SIGPENDING
// limit; Errc::already_exists if another handler owns the preemption signal. Not async-signal-safe
// (the first call per thread and clock allocates the timer); later calls are one system call.
Result<void> enable(std::chrono::nanoseconds budget, Handler handler, void* data = nullptr,
                    Clock clock = Clock::wall);

// Stops preemption of the calling thread until the next enable(). No system call. Async-signal-safe.
void disable() noexcept;

// True if the calling thread's preemption is enabled. Async-signal-safe.
bool enabled() noexcept;

// POSIX timers faultline holds for preemption, process-wide.
std::size_t timer_count() noexcept;

// The preemption signal (SIGRTMIN + 5 unless set before the first enable()).
int signal_number() noexcept;
// Chooses the preemption signal; only before the first enable(). Errc::busy after.
Result<void> set_signal(int sig);

}  // namespace faultline::preempt
