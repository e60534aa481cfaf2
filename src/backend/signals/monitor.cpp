// backend/signals/monitor.cpp: learning that a program unmapped a signal-backend region behind
// faultline's back. Anonymous private memory carries no identity the kernel shows (anonymous VMA names
// need CONFIG_ANON_VMA_NAME, which many kernels lack), so when userfaultfd is available each owned
// anonymous region is also registered, in write-protect mode and with no page ever write-protected, with
// a monitor userfaultfd that asks for UFFD_EVENT_UNMAP only: no fault ever reaches it, but an munmap (or
// an mmap MAP_FIXED, or an mremap) of the region's memory does, and a thread of faultline marks the region
// (RegionImpl::unmapped_seen) so that it never acts on that range again. faultline unregisters before it
// unmaps a region itself. Where userfaultfd is not available, memory_is_ours() falls back to what
// /proc/self/maps shows (os::range_matches). Not signal path.
#include <poll.h>
#include <pthread.h>

#include <cerrno>
#include <mutex>

#include "backend/signals/signals.hpp"
#include "core/page.hpp"
#include "os/linux/fork_hooks.hpp"
#include "os/linux/syscall.hpp"
#include "os/linux/thread_start.hpp"
#include "os/linux/uffd.hpp"
#include "region/table.hpp"

namespace faultline::backend::signals {

namespace {

std::mutex g_mutex;
int g_fd = -1;
bool g_tried = false;

[[noreturn]] void monitor_loop(int fd) {
  pthread_setname_np(pthread_self(), "faultline-watch");
  const std::size_t page = core::page_size();
  struct uffd_msg msgs[16];
  for (;;) {
    struct pollfd pfd{fd, POLLIN, 0};
    if (poll(&pfd, 1, -1) < 0) continue;
    const long n = os::raw_read(fd, msgs, sizeof msgs);
    for (long i = 0; i < n / static_cast<long>(sizeof(uffd_msg)); ++i) {
      if (msgs[i].event != UFFD_EVENT_UNMAP) continue;
      for (std::uintptr_t a = msgs[i].arg.remove.start; a < msgs[i].arg.remove.end;) {
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
  }
}

// The monitor fd, opened (and its thread started) on first use; -1 when userfaultfd cannot be had.
int monitor_fd() {
  std::lock_guard lock(g_mutex);
  if (g_tried) return g_fd;
  g_tried = true;
  os::fork_hooks::add({os::fork_hooks::kSignalsMonitor, [] { g_mutex.lock(); }, [] { g_mutex.unlock(); }, [] {
                         // The child has no monitor thread, and the fd watches the parent's memory.
                         if (g_fd >= 0) os::raw_close(g_fd);
                         g_fd = -1;
                         g_tried = false;
                         g_mutex.unlock();
                       }});
  const long fd = os::uffd_open();
  if (os::is_err(fd)) return -1;
  if (os::is_err(os::uffd_api(static_cast<int>(fd), UFFD_FEATURE_EVENT_UNMAP))) {
    os::raw_close(static_cast<int>(fd));
    return -1;
  }
  const int f = static_cast<int>(fd);
  auto t = os::start_thread("unmap monitor thread", [f] { monitor_loop(f); });
  if (!t) {
    os::raw_close(f);
    return -1;
  }
  t.value().detach();
  g_fd = f;
  return g_fd;
}

}  // namespace

bool monitor(std::uintptr_t base, std::uintptr_t end) {
  const int fd = monitor_fd();
  return fd >= 0 && !os::is_err(os::uffd_register(fd, base, end - base, UFFDIO_REGISTER_MODE_WP));
}

void unmonitor(std::uintptr_t base, std::uintptr_t end) noexcept {
  std::lock_guard lock(g_mutex);
  if (g_fd >= 0) os::uffd_unregister(g_fd, base, end - base);
}

}  // namespace faultline::backend::signals
