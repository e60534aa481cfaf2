// backend/monitor.cpp: the unmap monitor (see monitor.hpp). Not signal path.
#include "backend/monitor.hpp"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>

#include <cerrno>

#include "core/page.hpp"
#include "os/linux/fork_hooks.hpp"
#include "os/linux/syscall.hpp"
#include "os/linux/thread_start.hpp"
#include "os/linux/uffd.hpp"
#include "region/table.hpp"

namespace faultline::backend::monitor {

namespace {

constexpr int kMaxFds = 6;

std::mutex g_mutex;                        // the state below
std::mutex& g_events = *new std::mutex();  // event_mutex(); never destroyed (the thread outlives statics)
bool g_tried = false, g_running = false;
int g_own = -1;   // the monitor's own userfaultfd (signal-backend ranges)
int g_wake = -1;  // eventfd: the set of fds changed
std::atomic<int> g_fds[kMaxFds];
std::atomic<int> g_nfds{0};

[[noreturn]] void loop() {
  pthread_setname_np(pthread_self(), "faultline-watch");
  struct uffd_msg msgs[16];
  for (;;) {
    struct pollfd pfd[kMaxFds + 1];
    const int n = g_nfds.load(std::memory_order_acquire);
    for (int i = 0; i < n; ++i) pfd[i] = {g_fds[i].load(std::memory_order_relaxed), POLLIN, 0};
    pfd[n] = {g_wake, POLLIN, 0};
    if (poll(pfd, static_cast<nfds_t>(n + 1), -1) < 0) continue;
    if (pfd[n].revents & POLLIN) {
      std::uint64_t v;
      (void)!os::raw_read(g_wake, &v, sizeof v);
    }
    for (int i = 0; i < n; ++i) {
      if (!(pfd[i].revents & POLLIN)) continue;
      std::lock_guard lock(g_events);  // from the read until the marks are set (see settle())
      const long got = os::raw_read(pfd[i].fd, msgs, sizeof msgs);
      for (long k = 0; k < got / static_cast<long>(sizeof(uffd_msg)); ++k) {
        if (msgs[k].event == UFFD_EVENT_UNMAP) mark_unmapped(msgs[k].arg.remove.start, msgs[k].arg.remove.end);
      }
    }
  }
}

void add_fd_locked(int fd) {
  const int n = g_nfds.load(std::memory_order_relaxed);
  if (n == kMaxFds) return;
  g_fds[n].store(fd, std::memory_order_relaxed);
  g_nfds.store(n + 1, std::memory_order_release);
  const std::uint64_t one = 1;
  (void)!os::raw_write(g_wake, &one, sizeof one);
}

}  // namespace

std::mutex& event_mutex() noexcept { return g_events; }

void settle() noexcept {
  std::lock_guard lock(g_events);
}

void mark_unmapped(std::uintptr_t start, std::uintptr_t end) noexcept {
  const std::size_t page = core::page_size();
  for (std::uintptr_t a = start; a < end;) {
    detail::RegionImpl* r = region::find_and_pin(a);
    if (r == nullptr) {
      a += page;
      continue;
    }
    r->unmapped_seen.store(true, std::memory_order_release);
    a = r->end;
    region::unpin(r);
  }
}

bool start() {
  std::lock_guard lock(g_mutex);
  if (g_tried) return g_running;
  g_tried = true;
  os::fork_hooks::add({os::fork_hooks::kMonitor, [] { g_mutex.lock(); }, [] { g_mutex.unlock(); }, [] {
                         // The child has no monitor thread, and the fds watch the parent's memory.
                         for (int i = 0; i < g_nfds.load(); ++i) {
                           if (g_fds[i].load() == g_own) os::raw_close(g_own);
                         }
                         if (g_wake >= 0) os::raw_close(g_wake);
                         g_nfds.store(0);
                         g_own = g_wake = -1;
                         g_tried = g_running = false;
                         g_mutex.unlock();
                       }});
  const long wake = os::raw_eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (os::is_err(wake)) return false;
  const long fd = os::uffd_open_with(UFFD_FEATURE_EVENT_UNMAP, 0).fd;
  if (os::is_err(fd)) {
    os::raw_close(static_cast<int>(wake));
    return false;
  }
  g_wake = static_cast<int>(wake);
  g_own = static_cast<int>(fd);
  g_fds[0].store(g_own);
  g_nfds.store(1, std::memory_order_release);
  auto t = os::start_thread("unmap monitor thread", loop);
  if (!t) {
    os::raw_close(g_own);
    os::raw_close(g_wake);
    g_own = g_wake = -1;
    g_nfds.store(0);
    return false;
  }
  t.value().detach();
  g_running = true;
  return true;
}

bool watch_range(std::uintptr_t base, std::uintptr_t end) {
  if (!start()) return false;
  std::lock_guard lock(g_mutex);
  return !os::is_err(os::uffd_register(g_own, base, end - base, UFFDIO_REGISTER_MODE_WP));
}

void unwatch_range(std::uintptr_t base, std::uintptr_t end) noexcept {
  std::lock_guard lock(g_mutex);
  if (g_own >= 0) os::uffd_unregister(g_own, base, end - base);
}

void watch_fd(int fd) {
  std::lock_guard lock(g_mutex);
  if (g_running) add_fd_locked(fd);
}

}  // namespace faultline::backend::monitor
