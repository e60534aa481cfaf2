// thread/world.cpp: stop-the-world, resume, and root scanning (the controller side). Not signal path,
// but between stop() and resume() nothing here allocates or takes a lock a stopped thread may hold.
#include "core/guard.hpp"
#include "faultline/world.hpp"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <string>

#include "arch/arch.hpp"
#include "faultline/trap.hpp"
#include "os/linux/maps.hpp"
#include "os/linux/syscall.hpp"
#include "thread/registry.hpp"
#include "thread/state.hpp"
#include "thread/world.hpp"

namespace faultline::world {

namespace {

using detail::g_world;
using thread::ThreadState;
using Clock = std::chrono::steady_clock;

std::mutex g_stop_mutex;      // serialises stop() ... resume()
long g_stopper = 0;           // the thread that stopped the world (guarded by g_stop_mutex's owner)
std::atomic<bool> g_is_stopped{false};
std::mutex g_install_mutex;

Result<int> install_signal(int want) {
  // Installed by an earlier stop: still ours? (Another component may have taken the signal since: then
  // the stop would wait for acknowledgements that never come.) One sigaction query.
  if (const int s = g_world.signal.load(); s != 0 && (want == 0 || want == s)) {
    struct sigaction cur {};
    sigaction(s, nullptr, &cur);
    if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == detail::on_stop_signal) return s;
    return Error(Errc::already_exists, "world::stop: signal " + std::to_string(s) +
                                           " was taken by another handler since the last stop");
  }
  std::lock_guard lock(g_install_mutex);
  int sig = g_world.signal.load();
  if (sig != 0) {
    if (want != 0 && want != sig) {
      return Error(Errc::invalid_argument, "world::stop: the stop signal is already " + std::to_string(sig));
    }
  } else {
    sig = want != 0 ? want : SIGRTMIN + 4;
    if (sig < SIGRTMIN || sig > SIGRTMAX) {
      if (sig != SIGUSR1 && sig != SIGUSR2 && sig != SIGPWR && sig != SIGXCPU) {
        return Error(Errc::invalid_argument, "world::stop: signal " + std::to_string(sig) +
                                                 " is not a real-time signal, SIGUSR1/2, SIGPWR or SIGXCPU");
      }
    }
  }
  struct sigaction cur {};
  sigaction(sig, nullptr, &cur);
  const bool ours = (cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == detail::on_stop_signal;
  if (!ours) {
    if (!(cur.sa_flags & SA_SIGINFO) && cur.sa_handler != SIG_DFL && cur.sa_handler != SIG_IGN) {
      return Error(Errc::already_exists, "world::stop: signal " + std::to_string(sig) +
                                             " already has a handler that is not faultline's");
    }
    if ((cur.sa_flags & SA_SIGINFO) && g_world.signal.load() == 0) {
      return Error(Errc::already_exists, "world::stop: signal " + std::to_string(sig) +
                                             " already has a handler that is not faultline's");
    }
    struct sigaction sa {};
    sa.sa_sigaction = detail::on_stop_signal;
    // SA_SIGINFO: the handler needs the context. SA_RESTART: system calls a thread was in go on after
    // the stop. SA_ONSTACK: a thread stopped near the end of its stack still stops. The stop signal
    // itself stays blocked while the handler sleeps (a re-sent one waits and is then ignored).
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, nullptr) != 0) return Error::from_errno("sigaction (stop signal)", errno);
  }
  g_world.signal.store(sig);
  return sig;
}

// "tid 1234 (pc 0x..., in system call 202)" from /proc/<tid>/syscall.
std::string describe_thread(long tid) {
  std::string s = "thread " + std::to_string(tid);
  char path[64], buf[256] = {};
  std::snprintf(path, sizeof path, "/proc/self/task/%ld/syscall", tid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n > 0) {
      buf[n] = '\0';
      if (buf[n - 1] == '\n') buf[n - 1] = '\0';
      // "nr a1 a2 a3 a4 a5 a6 sp pc", "-1 sp pc" (not in a system call) or "running".
      std::string text = buf;
      auto last = text.rfind(' ');
      if (text == "running") s += " (running)";
      else if (last != std::string::npos) s += " (pc " + text.substr(last + 1) + ", /proc/<tid>/syscall: " + text + ")";
    }
  } else {
    s += " (/proc/self/task/" + std::to_string(tid) + "/syscall unreadable)";
  }
  return s;
}

void release_all(std::uint32_t epoch) {
  g_world.resume_epoch.store(epoch, std::memory_order_release);
  bool signalled = false;
  for (ThreadState* t = thread::registry_head(); t != nullptr && !signalled; t = t->next) signalled = t->stopped_by == 1;
  if (signalled) os::raw_futex_wake(os::futex_word(g_world.resume_epoch), INT_MAX);
  for (ThreadState* t = thread::registry_head(); t != nullptr; t = t->next) {
    if (t->stopped_by == 2) {
      // Wake the thread only if it left its region meanwhile and waits at the exit.
      if (t->blocking.exchange(thread::kBlocking, std::memory_order_acq_rel) & thread::kBlockingWaiter) {
        os::raw_futex_wake(os::futex_word(t->blocking), INT_MAX);
      }
    }
    t->stopped_by = 0;
  }
}

}  // namespace

Result<void> stop(const StopOptions& opts) {
  return core::guarded([&]() -> Result<void> {
    if (opts.resend_after.count() <= 0 || opts.timeout.count() <= 0) {
      return Error(Errc::invalid_argument, "world::stop: resend_after and timeout must be positive");
    }
    if (in_handler()) return Error(Errc::busy, "world::stop: called from inside a fault handler");
    ThreadState* self = thread::current();
    if (self == nullptr) return Error(Errc::not_installed, "world::stop: the calling thread is not attached");
    if (g_is_stopped.load() && g_stopper == self->tid) {
      return Error(Errc::busy, "world::stop: this thread has already stopped the world");
    }
    auto sig = install_signal(opts.signal);
    if (!sig) return std::move(sig).error();

    g_stop_mutex.lock();
    thread::registry_mutex().lock();
    const std::uint32_t epoch = g_world.stop_epoch.fetch_add(1, std::memory_order_acq_rel) + 1;
    const long pid = getpid();
    for (ThreadState* t = thread::registry_head(); t != nullptr; t = t->next) {
      t->stopped_by = 0;
      if (t == self) continue;
      std::uint32_t expected = thread::kBlocking;
      if (t->blocking.compare_exchange_strong(expected, thread::kBlockingStopped, std::memory_order_acq_rel)) {
        t->stopped_by = 2;
        continue;
      }
      t->stopped_by = 1;
      t->stop_send_error = static_cast<int>(-std::min(0L, os::raw_tgkill(pid, t->tid, sig.value())));
      g_world.sent.fetch_add(1, std::memory_order_relaxed);
    }
    // Wait for every acknowledgement; re-send to the threads still missing every `resend_after`.
    const auto deadline = Clock::now() + opts.timeout;
    auto last_send = Clock::now();
    for (;;) {
      const std::uint32_t bell = g_world.doorbell.load(std::memory_order_seq_cst);
      ThreadState* missing = nullptr;
      for (ThreadState* t = thread::registry_head(); t != nullptr && missing == nullptr; t = t->next) {
        if (t->stopped_by != 1 || t->ack.load(std::memory_order_acquire) == epoch) continue;
        // Signalled, but it entered a blocking region since (e.g. to wait for the registry lock this stop
        // holds): count it as stopped there. The signal it has pending is ignored once it sees the resume.
        std::uint32_t expected = thread::kBlocking;
        if (t->blocking.compare_exchange_strong(expected, thread::kBlockingStopped, std::memory_order_acq_rel)) {
          t->stopped_by = 2;
          continue;
        }
        missing = t;
      }
      if (missing == nullptr) break;
      const auto now = Clock::now();
      if (now >= deadline) {
        const long tid = missing->tid;
        const int send_error = missing->stop_send_error;
        release_all(epoch);
        thread::registry_mutex().unlock();
        g_stop_mutex.unlock();
        // The message is built with no lock held (it allocates).
        if (send_error != 0) {
          return Error(Errc::no_space,
                       "world::stop: could not send the stop signal to thread " + std::to_string(tid) + ": tgkill: " +
                           strerrorname_np(send_error) + " (" + std::strerror(send_error) + ")" +
                           (send_error == EAGAIN ? "; the process's queue of pending signals is full (RLIMIT_SIGPENDING)"
                                                 : ""));
        }
        return Error(Errc::timed_out, "world::stop: " + describe_thread(tid) + " did not stop within " +
                                          std::to_string(opts.timeout.count()) + " ms");
      }
      if (now - last_send >= opts.resend_after) {
        for (ThreadState* t = missing; t != nullptr; t = t->next) {
          if (t->stopped_by == 1 && t->ack.load(std::memory_order_acquire) != epoch) {
            t->stop_send_error = static_cast<int>(-std::min(0L, os::raw_tgkill(pid, t->tid, sig.value())));
            g_world.sent.fetch_add(1, std::memory_order_relaxed);
          }
        }
        last_send = now;
      }
      const auto wait = std::min<Clock::duration>(opts.resend_after - (now - last_send), deadline - now);
      const auto ns = std::max<std::int64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(wait).count(), 1000);
      struct timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
      g_world.controller_waiting.store(1, std::memory_order_seq_cst);
      // An acknowledgement since `bell` was read changes the doorbell, so this returns at once.
      if (g_world.doorbell.load(std::memory_order_seq_cst) == bell) os::raw_futex_wait(os::futex_word(g_world.doorbell), bell, &ts);
      g_world.controller_waiting.store(0, std::memory_order_seq_cst);
    }
    g_stopper = self->tid;
    g_is_stopped.store(true, std::memory_order_release);
    return {};
  });
}

Result<void> resume() {
  ThreadState* self = thread::current();
  if (!g_is_stopped.load() || self == nullptr || g_stopper != self->tid) {
    return Error(Errc::invalid_argument, "world::resume: the calling thread did not stop the world");
  }
  g_is_stopped.store(false, std::memory_order_release);
  g_stopper = 0;
  release_all(g_world.stop_epoch.load(std::memory_order_acquire));
  thread::registry_mutex().unlock();
  g_stop_mutex.unlock();
  return {};
}

bool stopped() noexcept { return g_is_stopped.load(std::memory_order_acquire); }

std::uint64_t signals_sent() noexcept { return g_world.sent.load(std::memory_order_relaxed); }

namespace {

Result<void> check_stopper(const char* what) {
  ThreadState* self = thread::current();
  if (!g_is_stopped.load() || self == nullptr || g_stopper != self->tid) {
    return Error(Errc::invalid_argument, std::string("world::") + what + ": only between stop() and resume(), "
                                             "on the thread that stopped the world");
  }
  return {};
}

std::uintptr_t word_down(std::uintptr_t v) { return v & ~std::uintptr_t{7}; }

// The lowest address of the mapping that holds `addr` (the main thread's stack grows on demand).
std::uintptr_t mapping_start(std::uintptr_t addr) {
  os::MapsEntry m;
  return os::find_mapping(addr, &m) ? m.start : addr;
}

StoppedThread describe(const ThreadState& t) {
  StoppedThread s{};
  s.tid = t.tid;
  s.in_blocking_region = t.stopped_by == 2;
  const std::uintptr_t red = arch::Current::kRedZone;
  if (s.in_blocking_region) {
    s.context = nullptr;
    s.stack_lo = word_down(t.blocking_sp - red);
  } else {
    s.context = &t.stop_ctx;
    if (t.stop_on_altstack) {
      s.altstack_lo = word_down(t.stop_sp - red);
      s.altstack_hi = t.altstack_hi;
      s.stack_lo = t.stop_main_sp != 0 ? word_down(t.stop_main_sp - red)
                                       : (t.is_main ? mapping_start(t.stack_hi - 1) : t.stack_lo);
    } else {
      s.stack_lo = word_down(t.stop_sp - red);
    }
  }
  s.stack_hi = t.stack_hi;
  return s;
}

// What the visiting calls (for_each_stopped, scan_roots; `what` names the call in errors) share: they
// need a visitor and the thread that stopped the world; then `visit(thread, its description)` runs for
// each stopped thread.
template <class Visitor, class Visit>
Result<void> visit_stopped(const char* what, Visitor fn, Visit&& visit) {
  if (fn == nullptr) return Error(Errc::invalid_argument, std::string("world::") + what + ": null visitor");
  if (auto c = check_stopper(what); !c) return c;
  for (ThreadState* t = thread::registry_head(); t != nullptr; t = t->next) {
    if (t->stopped_by != 0) visit(*t, describe(*t));
  }
  return {};
}

}  // namespace

Result<void> for_each_stopped(ThreadVisitor fn, void* data) {
  return core::guarded([&]() -> Result<void> {
    return visit_stopped("for_each_stopped", fn, [&](ThreadState& t, StoppedThread s) {
      FaultContext blocking_ctx(const_cast<ucontext_t*>(&t.blocking_uc));
      if (s.in_blocking_region) s.context = &blocking_ctx;
      fn(s, data);
    });
  });
}

namespace {

void scan_context(const ucontext_t& uc, const unsigned char* simd, std::size_t simd_len, long tid, RootVisitor fn,
                  void* data) {
  std::size_t n = 0;
  const std::uintptr_t* g = arch::Current::general_words(uc, &n);
  fn(g, g + n, RootKind::registers, tid, data);
  if (simd != nullptr && simd_len >= 8) {
    const auto* w = reinterpret_cast<const std::uintptr_t*>(simd);
    fn(w, w + simd_len / 8, RootKind::simd, tid, data);
  }
}

void scan_range(std::uintptr_t lo, std::uintptr_t hi, RootKind kind, long tid, RootVisitor fn, void* data) {
  if (lo >= hi) return;
  fn(reinterpret_cast<const std::uintptr_t*>(lo), reinterpret_cast<const std::uintptr_t*>(word_down(hi)), kind,
     tid, data);
}

}  // namespace

Result<void> scan_roots(RootVisitor fn, void* data) {
  return core::guarded([&]() -> Result<void> {
    auto stopped = visit_stopped("scan_roots", fn, [&](const ThreadState& t, const StoppedThread& s) {
      if (s.in_blocking_region) {
        std::size_t len = 0;
        const void* simd = arch::Current::own_simd_state(t.blocking_uc, &len);
        scan_context(t.blocking_uc, static_cast<const unsigned char*>(simd), len, t.tid, fn, data);
      } else {
        std::size_t len = t.xstate_len;
        const void* simd = t.xstate;
        if (arch::Current::kSimdInContext) simd = arch::Current::own_simd_state(t.stop_uc, &len);
        scan_context(t.stop_uc, static_cast<const unsigned char*>(simd), len, t.tid, fn, data);
      }
      scan_range(s.stack_lo, s.stack_hi, RootKind::stack, t.tid, fn, data);
      if (s.altstack_hi != 0) scan_range(s.altstack_lo, s.altstack_hi, RootKind::altstack, t.tid, fn, data);
    });
    if (!stopped) return stopped;
    // The caller: its registers as they are now, and its stack from here up.
    ThreadState* self = thread::current();
    ucontext_t own;
    getcontext(&own);
    std::size_t own_len = 0;
    const void* own_simd = arch::Current::own_simd_state(own, &own_len);
    scan_context(own, static_cast<const unsigned char*>(own_simd), own_len, self->tid, fn, data);
    const auto here = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
    scan_range(word_down(here - arch::Current::kRedZone), self->stack_hi, RootKind::stack, self->tid, fn, data);
    return {};
  });
}

namespace testing {
void drop_next_signals(unsigned n) noexcept { g_world.drop.store(n); }
}  // namespace testing

}  // namespace faultline::world

namespace faultline {

bool enter_blocking_region() noexcept {
  thread::ThreadState* ts = thread::current();
  if (ts == nullptr) return false;
  if (ts->blocking_depth++ > 0) return true;
  getcontext(&ts->blocking_uc);  // callee-saved registers, which may hold the caller's pointers
  ts->blocking_sp = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
  ts->blocking.store(thread::kBlocking, std::memory_order_seq_cst);
  return true;
}

void leave_blocking_region() noexcept {
  thread::ThreadState* ts = thread::current();
  if (ts == nullptr || ts->blocking_depth == 0 || --ts->blocking_depth > 0) return;
  for (;;) {
    std::uint32_t expected = thread::kBlocking;
    if (ts->blocking.compare_exchange_strong(expected, thread::kRunning, std::memory_order_acq_rel)) return;
    // Stopped while in the region: say so, and wait here until resume().
    if (!(expected & thread::kBlockingWaiter) &&
        !ts->blocking.compare_exchange_strong(expected, expected | thread::kBlockingWaiter, std::memory_order_acq_rel)) {
      continue;
    }
    os::raw_futex_wait(os::futex_word(ts->blocking), thread::kBlockingStopped | thread::kBlockingWaiter);
  }
}

BlockingRegion::BlockingRegion() noexcept : active_(enter_blocking_region()) {}

BlockingRegion::~BlockingRegion() {
  if (active_) leave_blocking_region();
}

}  // namespace faultline
