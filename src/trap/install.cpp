// trap/install.cpp: taking and giving back the signals; registering handlers. Not signal path.
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <chrono>
#include <thread>

#include "core/guard.hpp"
#include "faultline/fault_injection.hpp"
#include "faultline/report.hpp"
#include "faultline/thread.hpp"
#include "faultline/trap.hpp"
#include "os/linux/fork_hooks.hpp"
#include "trap/dispatcher.hpp"

namespace faultline {

namespace {

using trap::g_state;

std::mutex g_install_mutex;
// The attachment install() makes for the installing thread. Kept for the life of the process: another
// thread cannot remove an alternate stack, and the installing thread may still be using it.
std::optional<ThreadAttachment> g_installer_attachment;

constexpr int kSignals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGABRT};
constexpr unsigned kValidSignals = trap_all | trap_abrt;

bool is_ours(const struct sigaction& sa) {
  return (sa.sa_flags & SA_SIGINFO) && sa.sa_sigaction == trap::faultline_trap_entry;
}

struct sigaction our_action() {
  struct sigaction sa{};
  sa.sa_sigaction = trap::faultline_trap_entry;
  // SA_SIGINFO: we need the siginfo (fault address, si_code) and the ucontext (registers).
  // SA_ONSTACK: run on the thread's alternate signal stack when it has one, so that a stack overflow
  //             can still be handled and reported.
  // SA_NODEFER: do not block the signal while the handler runs. A fault inside the handler (or inside a
  //             handler it calls) then re-enters faultline, which recognises it as nested and reports
  //             it; with the signal blocked the kernel would kill the process silently instead.
  // SA_RESTART: a SIGSEGV/SIGBUS sent with kill() to a thread blocked in a system call does not make
  //             that call fail with EINTR once the signal is dealt with.
  // Not SA_RESETHAND: faultline stays installed after a fault.
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER | SA_RESTART;
  // Block nothing extra: other signals (a stop-the-world request, a timer) may arrive while a fault is
  // handled, and their handlers are signal-safe by definition.
  sigemptyset(&sa.sa_mask);
  return sa;
}

// Waits until no dispatch that started before this call is still running, yielding at first and then
// sleeping a millisecond at a time, for at most kDrainLimit. A dispatch that never ends means a handler
// left by longjmp without leave_handler() (or one that blocks forever): say so instead of hanging.
constexpr auto kDrainLimit = std::chrono::seconds(10);

}  // namespace

void trap::record_main_stack() noexcept {
  if (g_main_stack_lo.load() != 0 || gettid() != getpid()) return;
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) != 0) return;
  void* addr = nullptr;
  std::size_t size = 0;
  pthread_attr_getstack(&attr, &addr, &size);
  pthread_attr_destroy(&attr);
  g_main_stack_hi.store(reinterpret_cast<std::uintptr_t>(addr) + size);
  g_main_stack_lo.store(reinterpret_cast<std::uintptr_t>(addr));
}

Result<void> trap::wait_for_dispatches(const char* what) {
  const auto deadline = std::chrono::steady_clock::now() + kDrainLimit;
  unsigned spins = 0;
  bool ok = g_state.epoch.synchronize([&] {
    if (++spins < 1000) {
      sched_yield();
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return std::chrono::steady_clock::now() < deadline;
  });
  if (ok) return {};
  return Error(Errc::timed_out, std::string(what) +
                                    ": a fault handler has been running for 10 s; did a handler leave by longjmp "
                                    "without calling faultline::leave_handler()?");
}

namespace {

using trap::wait_for_dispatches;

// Writes `prev` as the previous action of `sig`: fill the free slot, publish it, and wait until no
// dispatch can still read the slot that was replaced.
Result<void> set_previous(int sig, const struct sigaction& prev) {
  trap::SignalState& ss = g_state.sig[sig];
  unsigned next = (ss.prev_idx.load(std::memory_order_relaxed) + 1) & 1;
  ss.prev[next] = prev;
  ss.prev_reset.store(false, std::memory_order_relaxed);
  ss.prev_idx.store(next, std::memory_order_release);
  return wait_for_dispatches("install");
}

// Signals faultline installed whose current action is someone else's. Caller holds g_install_mutex.
unsigned overridden_locked() {
  unsigned over = 0;
  for (int sig : kSignals) {
    if (!g_state.sig[sig].installed.load(std::memory_order_relaxed)) continue;
    struct sigaction cur{};
    sigaction(sig, nullptr, &cur);
    if (!is_ours(cur)) over |= trap::signal_bit(sig);
  }
  return over;
}

std::string signals_text(unsigned bits) {
  std::string s;
  for (int sig : kSignals) {
    if (bits & trap::signal_bit(sig)) {
      if (!s.empty()) s += ", ";
      s += sigabbrev_np(sig);
    }
  }
  return s;
}

}  // namespace

Result<void> install(const InstallOptions& opts) {
  return core::guarded([&]() -> Result<void> {
    if (opts.signals == 0 || (opts.signals & ~kValidSignals) != 0) {
      return Error(Errc::invalid_argument, "install: signals must be a non-empty set of TrapSignal bits");
    }
    os::fork_hooks::add({os::fork_hooks::kTrap, [] { g_install_mutex.lock(); }, [] { g_install_mutex.unlock(); },
                         [] {
                           trap::reset_epoch_after_fork();
                           g_install_mutex.unlock();
                         }});
    std::lock_guard lock(g_install_mutex);
    trap::record_main_stack();
    if (opts.altstack_for_caller && !thread_attached()) {
      auto att = attach_thread();
      if (!att) return std::move(att).error();
      g_installer_attachment.emplace(std::move(att.value()));
    }
    const struct sigaction ours = our_action();
    for (int sig : kSignals) {
      if (!(opts.signals & trap::signal_bit(sig))) continue;
      trap::SignalState& ss = g_state.sig[sig];
      if (ss.installed.load(std::memory_order_relaxed)) continue;
      struct sigaction old{};
      if (sigaction(sig, nullptr, &old) != 0) return Error::from_errno("sigaction", errno);
      if (is_ours(old)) {  // left behind by a forced uninstall elsewhere; never chain to ourselves
        old = {};
        old.sa_handler = SIG_DFL;
      }
      if (auto r = set_previous(sig, old); !r) return r;
      // Mark installed before the handler is live so that a fault in between finds consistent state.
      ss.installed.store(true, std::memory_order_release);
      if (sigaction(sig, &ours, nullptr) != 0) {
        int e = errno;
        ss.installed.store(false, std::memory_order_release);
        return Error::from_errno("sigaction", e);
      }
    }
    // faultline's environment variables are read as glibc's secure_getenv reads them: not at all in a
    // program running with privileges its invoker lacks (setuid, setgid, file capabilities), so that no
    // unprivileged user can make a privileged program fail on purpose or write where it should not.
    // Read once per process, by the first install() (later calls must not undo what the program did since,
    // such as disabling the report).
    static bool env_read = false;
    if (!env_read) {
      env_read = true;
      if (const char* spec = secure_getenv("FAULTLINE_INJECT"); spec != nullptr && *spec != '\0') {
        if (auto r = fault_injection::arm_from_spec(spec); !r) return r;
      }
      if (const char* env = secure_getenv("FAULTLINE_REPORT"); env != nullptr && *env != '\0' && !report::enabled()) {
        if (auto r = report::enable_from_env(env); !r) return r;
      }
    }
    return {};
  });
}

Result<void> uninstall(bool force) {
  return core::guarded([&]() -> Result<void> {
    if (in_handler()) return Error(Errc::busy, "uninstall: called from inside a fault handler");
    std::lock_guard lock(g_install_mutex);
    const unsigned over = overridden_locked();
    if (over != 0 && !force) {
      return Error(Errc::overridden, "uninstall: another handler was installed over faultline's for " +
                                         signals_text(over) +
                                         "; restoring the previous actions would remove it (use force)");
    }
    for (int sig : kSignals) {
      trap::SignalState& ss = g_state.sig[sig];
      if (!ss.installed.load(std::memory_order_relaxed)) continue;
      struct sigaction prev = ss.prev[ss.prev_idx.load(std::memory_order_relaxed)];
      if (ss.prev_reset.load(std::memory_order_relaxed)) {
        prev = {};
        prev.sa_handler = SIG_DFL;
      }
      if (sigaction(sig, &prev, nullptr) != 0) return Error::from_errno("sigaction", errno);
      ss.installed.store(false, std::memory_order_release);
    }
    return {};
  });
}

unsigned overridden() {
  std::lock_guard lock(g_install_mutex);
  return overridden_locked();
}

Result<void> reassert() {
  return core::guarded([&]() -> Result<void> {
    std::lock_guard lock(g_install_mutex);
    const struct sigaction ours = our_action();
    for (int sig : kSignals) {
      if (!g_state.sig[sig].installed.load(std::memory_order_relaxed)) continue;
      struct sigaction cur{};
      if (sigaction(sig, nullptr, &cur) != 0) return Error::from_errno("sigaction", errno);
      if (is_ours(cur)) continue;
      if (auto r = set_previous(sig, cur); !r) return r;
      if (sigaction(sig, &ours, nullptr) != 0) return Error::from_errno("sigaction", errno);
    }
    return {};
  });
}

Result<HandlerId> add_handler(FaultHandler fn, void* data, unsigned signals, FaultDescriber describe) {
  return core::guarded([&]() -> Result<HandlerId> {
    if (fn == nullptr) return Error(Errc::invalid_argument, "add_handler: handler function is null");
    if (signals == 0 || (signals & ~kValidSignals) != 0) {
      return Error(Errc::invalid_argument, "add_handler: signals must be a non-empty set of TrapSignal bits");
    }
    std::lock_guard lock(g_install_mutex);
    for (unsigned i = 0; i < trap::kMaxHandlers; ++i) {
      trap::HandlerSlot& slot = g_state.slots[i];
      if (slot.fn.load(std::memory_order_relaxed) != nullptr) continue;
      slot.data.store(data, std::memory_order_relaxed);
      slot.signals.store(signals, std::memory_order_relaxed);
      slot.describe.store(describe, std::memory_order_relaxed);
      ++slot.generation;
      if (g_state.slot_limit.load(std::memory_order_relaxed) <= i) {
        g_state.slot_limit.store(i + 1, std::memory_order_release);
      }
      slot.fn.store(fn, std::memory_order_release);
      return HandlerId{i, slot.generation};
    }
    return Error(Errc::no_space, "add_handler: all " + std::to_string(trap::kMaxHandlers) + " handler slots are in use");
  });
}

Result<void> remove_handler(HandlerId id) {
  return core::guarded([&]() -> Result<void> {
    if (in_handler()) return Error(Errc::busy, "remove_handler: called from inside a fault handler");
    std::lock_guard lock(g_install_mutex);
    if (id.slot >= trap::kMaxHandlers || g_state.slots[id.slot].generation != id.generation ||
        g_state.slots[id.slot].fn.load(std::memory_order_relaxed) == nullptr) {
      return Error(Errc::not_found, "remove_handler: no handler with that id (already removed?)");
    }
    g_state.slots[id.slot].fn.store(nullptr, std::memory_order_release);
    // Wait for dispatches that may still be running it, so the caller may free its data.
    return wait_for_dispatches("remove_handler");
  });
}

Result<void> set_stack_overflow_handler(StackOverflowHandler fn, void* data) {
  return core::guarded([&]() -> Result<void> {
    if (in_handler()) return Error(Errc::busy, "set_stack_overflow_handler: called from inside a fault handler");
    std::lock_guard lock(g_install_mutex);
    g_state.overflow_fn.store(nullptr, std::memory_order_release);
    if (auto r = wait_for_dispatches("set_stack_overflow_handler"); !r) return r;
    g_state.overflow_data.store(data, std::memory_order_relaxed);
    g_state.overflow_fn.store(fn, std::memory_order_release);
    return {};
  });
}

}  // namespace faultline
