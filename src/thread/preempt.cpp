// thread/preempt.cpp: per-thread preemption timers (creating, arming, deleting). Not signal path.
#include <signal.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <mutex>
#include <string>

#include "core/guard.hpp"
#include "faultline/preempt.hpp"
#include "os/linux/syscall.hpp"
#include "thread/preempt.hpp"
#include "thread/registry.hpp"
#include "thread/state.hpp"

namespace faultline::preempt {

namespace {

std::mutex g_mutex;             // installing the handler, creating timers
std::atomic<int> g_signal{0};   // chosen signal (0: not yet)
bool g_installed = false;
std::atomic<std::size_t> g_timers{0};

int chosen_signal() {
  int s = g_signal.load();
  return s != 0 ? s : SIGRTMIN + 5;
}

Result<void> install_locked() {
  if (g_installed) return {};
  const int sig = chosen_signal();
  struct sigaction cur {};
  sigaction(sig, nullptr, &cur);
  if ((cur.sa_flags & SA_SIGINFO) ? cur.sa_sigaction != detail::on_preempt_signal
                                   : (cur.sa_handler != SIG_DFL && cur.sa_handler != SIG_IGN)) {
    return Error(Errc::already_exists,
                 "preempt::enable: signal " + std::to_string(sig) + " already has a handler that is not faultline's");
  }
  struct sigaction sa {};
  sa.sa_sigaction = detail::on_preempt_signal;
  // SA_SIGINFO: the handler gets the interrupted context (for inject_call). SA_RESTART: a system call
  // the budget interrupts goes on. No SA_ONSTACK: inject_call needs the interrupted stack, not the
  // alternate one. The preemption signal stays blocked while its handler runs.
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(sig, &sa, nullptr) != 0) return Error::from_errno("sigaction (preemption signal)", errno);
  g_signal.store(sig);
  g_installed = true;
  return {};
}

Result<void> make_timer(thread::ThreadState& ts, Clock clock) {
  const int i = clock == Clock::wall ? 1 : 0;
  if (ts.timer_made[i]) return {};
  std::lock_guard lock(g_mutex);
  if (auto r = install_locked(); !r) return r;
  struct rlimit rl {};
  if (getrlimit(RLIMIT_SIGPENDING, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
      g_timers.load() + 1 > rl.rlim_cur) {
    return Error(Errc::no_space, "preempt::enable: another POSIX timer would exceed RLIMIT_SIGPENDING (" +
                                     std::to_string(rl.rlim_cur) + "): each timer reserves a queued signal");
  }
  struct sigevent ev {};
  ev.sigev_notify = SIGEV_THREAD_ID;
  ev.sigev_signo = g_signal.load();
  ev._sigev_un._tid = static_cast<pid_t>(ts.tid);
  timer_t t{};
  if (const long e = os::inject::point(fault_injection::Op::timer_create); e != 0) {
    return Error::from_errno("timer_create (preemption)", static_cast<int>(-e));
  }
  if (timer_create(clock == Clock::wall ? CLOCK_MONOTONIC : CLOCK_THREAD_CPUTIME_ID, &ev, &t) != 0) {
    if (errno == EAGAIN) {
      return Error(Errc::no_space, "preempt::enable: timer_create: EAGAIN (RLIMIT_SIGPENDING or the kernel's "
                                   "timer limit reached)");
    }
    return Error::from_errno("timer_create (preemption)", errno);
  }
  ts.timers[i] = t;
  ts.timer_made[i] = true;
  g_timers.fetch_add(1);
  return {};
}

}  // namespace

Result<void> enable(std::chrono::nanoseconds budget, Handler handler, void* data, Clock clock) {
  return core::guarded([&]() -> Result<void> {
    thread::ThreadState* ts = thread::current();
    if (ts == nullptr) return Error(Errc::not_installed, "preempt::enable: the calling thread is not attached");
    if (handler == nullptr) return Error(Errc::invalid_argument, "preempt::enable: null handler");
    if (budget.count() <= 0) return Error(Errc::invalid_argument, "preempt::enable: the budget must be positive");
    if (auto r = make_timer(*ts, clock); !r) return r;
    ts->preempt_fn = handler;
    ts->preempt_data = data;
    ts->preempt_enabled.store(1, std::memory_order_release);
    if (ts->preempt_pending.exchange(0, std::memory_order_acq_rel) != 0) {
      // A budget expired while disabled: deliver it now, with a real signal context.
      os::raw_tgkill(os::raw_getpid(), ts->tid, g_signal.load());
      return {};
    }
    struct itimerspec its {};
    its.it_value.tv_sec = static_cast<time_t>(budget.count() / 1'000'000'000);
    its.it_value.tv_nsec = static_cast<long>(budget.count() % 1'000'000'000);
    if (const long e = os::inject::point(fault_injection::Op::timer_settime); e != 0) {
      return Error::from_errno("timer_settime (preemption)", static_cast<int>(-e));
    }
    if (timer_settime(ts->timers[clock == Clock::wall ? 1 : 0], 0, &its, nullptr) != 0) {
      return Error::from_errno("timer_settime (preemption)", errno);
    }
    return {};
  });
}

std::size_t timer_count() noexcept { return g_timers.load(); }

namespace detail {
void timers_released(std::size_t n) noexcept { g_timers.fetch_sub(n); }
}  // namespace detail

int signal_number() noexcept { return chosen_signal(); }

Result<void> set_signal(int sig) {
  return core::guarded([&]() -> Result<void> {
    std::lock_guard lock(g_mutex);
    if (g_installed) return Error(Errc::busy, "preempt::set_signal: preemption is already in use");
    if (sig < SIGRTMIN || sig > SIGRTMAX) {
      return Error(Errc::invalid_argument, "preempt::set_signal: " + std::to_string(sig) + " is not a real-time signal");
    }
    g_signal.store(sig);
    return {};
  });
}

}  // namespace faultline::preempt

namespace faultline::thread {

void release_preemption(ThreadState& ts) noexcept {
  ts.preempt_enabled.store(0);
  for (int i = 0; i < 2; ++i) {
    if (ts.timer_made[i]) {
      timer_delete(ts.timers[i]);
      ts.timer_made[i] = false;
      faultline::preempt::detail::timers_released(1);
    }
  }
}

}  // namespace faultline::thread
