// region/uffd.cpp: the userfaultfd backend: opening the fds, choosing the backend, registering ranges,
// the handler thread, and harvesting written pages with PAGEMAP_SCAN. Not signal path (the filling
// itself, shared with the self-service SIGBUS handler, is in uffd_fill.cpp).
#include "region/uffd.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/page.hpp"
#include "os/linux/uffd.hpp"
#include "region/fill.hpp"
#include "trap/dispatcher.hpp"

namespace faultline::region::uffd {

namespace {

struct FdState {
  int fd = -1;
  bool tried = false;
  std::string why;
};

std::mutex g_mutex;
FdState g_fds[3];
std::mutex g_watch_mutex;
// Pagers with userfaultfd regions. Never destroyed: the detached handler thread may still read it while
// the process runs its static destructors at exit.
std::vector<std::weak_ptr<detail::PagerImpl>>& g_watched = *new std::vector<std::weak_ptr<detail::PagerImpl>>();
// The evictor thread: evicts the oldest filled windows of regions over their watermark. A thread of its
// own because eviction drops pages with madvise, whose REMOVE event the handler thread must read.
std::mutex g_evict_mutex;
std::condition_variable& g_evict_cv = *new std::condition_variable();
std::deque<detail::RegionImpl*>& g_evict_queue = *new std::deque<detail::RegionImpl*>();
bool g_evictor_started = false;

pid_t g_owner = 0;            // the process the fds and the thread belong to (fork gives a child none)
bool g_thread_started = false;
int g_pagemap = -1;

std::string errno_text(const char* what, int e) { return std::string(what) + ": " + strerrorname_np(e) + " (" + std::strerror(e) + ")"; }

// fork: the locks are taken around it (the handler thread takes g_watch_mutex every tick; a child
// that inherited it locked would wedge its own handler thread). After fork the child shares the
// parent's userfaultfds (tied to the parent's memory) and has no handler thread: forget both, the
// child opens its own on first use.
void lock_for_fork() {
  g_mutex.lock();
  g_watch_mutex.lock();
  g_evict_mutex.lock();
}
void unlock_after_fork() {
  g_evict_mutex.unlock();
  g_watch_mutex.unlock();
  g_mutex.unlock();
}
void forget_after_fork() {
  for (FdState& s : g_fds) s = FdState{};
  g_evictor_started = false;
  g_evict_queue.clear();
  g_thread_started = false;
  g_owner = 0;
  g_pagemap = -1;
  g_watched.clear();
  unlock_after_fork();
}

int open_uffd(std::string* why) {
  int fd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  if (fd >= 0) return fd;
  const std::string sys = errno_text("userfaultfd(2)", errno);
  const int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
  if (dev >= 0) {
    fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
    const int e = errno;
    close(dev);
    if (fd >= 0) return fd;
    *why = sys + "; /dev/userfaultfd: " + errno_text("USERFAULTFD_IOC_NEW", e);
  } else {
    *why = sys + "; " + errno_text("/dev/userfaultfd", errno);
  }
  return -1;
}

std::uint64_t features_of(Kind k) {
  switch (k) {
    case Kind::handler: return UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_POISON | UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP;
    case Kind::sigbus: return UFFD_FEATURE_SIGBUS | UFFD_FEATURE_POISON;
    case Kind::wp_async: return UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED;
  }
  return 0;
}

void handler_loop(int fd);


void evictor_loop() {
  pthread_setname_np(pthread_self(), "faultline-evict");
  for (;;) {
    detail::RegionImpl* r = nullptr;
    {
      std::unique_lock lock(g_evict_mutex);
      g_evict_cv.wait(lock, [] { return !g_evict_queue.empty(); });
      r = g_evict_queue.front();
      g_evict_queue.pop_front();
    }
    detail::EvictState& e = *r->evict;
    for (;;) {
      std::pair<std::size_t, std::size_t> window;
      {
        std::lock_guard lock(e.mutex);
        if (e.resident <= e.max_resident || e.fifo.empty()) {
          e.queued = false;
          break;
        }
        window = e.fifo.front();
        e.fifo.pop_front();
        e.resident = e.resident > window.second ? e.resident - window.second : 0;
      }
      (void)evict_pages(*r, window.first, window.second);  // a failed write-back keeps the pages dirty
    }
    r->inflight.fetch_sub(1, std::memory_order_acq_rel);  // the queue's pin
  }
}

int fd_locked(Kind kind, std::string* why) {
  if (g_owner != getpid()) {
    static std::once_flag atfork;
    std::call_once(atfork, [] { pthread_atfork(lock_for_fork, unlock_after_fork, forget_after_fork); });
    g_owner = getpid();
  }
  FdState& s = g_fds[static_cast<int>(kind)];
  if (!s.tried) {
    s.tried = true;
    int fd = open_uffd(&s.why);
    if (fd >= 0) {
      struct uffdio_api api{};
      api.api = UFFD_API;
      api.features = features_of(kind);
      if (ioctl(fd, UFFDIO_API, &api) != 0) {
        s.why = errno_text("UFFDIO_API (features this kernel lacks)", errno);
        close(fd);
      } else {
        s.fd = fd;
      }
    }
  }
  if (s.fd < 0 && why != nullptr) *why = s.why;
  return s.fd;
}

bool pagemap_scan_works() {
  if (g_pagemap < 0) g_pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (g_pagemap < 0) return false;
  struct pm_scan_arg arg{};
  arg.size = sizeof arg;
  return ioctl(g_pagemap, PAGEMAP_SCAN, &arg) == 0 || errno != ENOTTY;
}

void forget_filled(std::uintptr_t start, std::uintptr_t end) {
  const std::size_t page = core::page_size();
  const unsigned side = trap::g_state.epoch.enter();
  for (std::uintptr_t a = start & ~(page - 1); a < end; a += page) {
    detail::RegionImpl* r = lookup(a);
    if (r == nullptr || r->filled == nullptr) continue;
    const std::size_t i = (a - r->base) / page;
    r->filled[i / 64].fetch_and(~(std::uint64_t{1} << (i % 64)), std::memory_order_acq_rel);
  }
  trap::g_state.epoch.exit(side);
}

// The handler thread: reads fault messages in batches and fills them. One per process.
void handler_loop(int fd) {
  pthread_setname_np(pthread_self(), "faultline-uffd");
  const std::size_t page = core::page_size();
  const std::size_t bounce_size = 512 * page;
  void* bounce = mmap(nullptr, bounce_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (bounce == MAP_FAILED) return;
  struct uffd_msg msgs[64];
  for (;;) {
    struct pollfd pfd{fd, POLLIN, 0};
    // Wake up now and then for the watchdog of pager requests.
    if (poll(&pfd, 1, 50) < 0 && errno != EINTR) return;
    {
      std::lock_guard lock(g_watch_mutex);
      struct timespec ts{};
      clock_gettime(CLOCK_MONOTONIC, &ts);
      const std::int64_t now = static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
      for (auto it = g_watched.begin(); it != g_watched.end();) {
        if (auto p = it->lock()) {
          expire_uffd_requests(*p, now);
          ++it;
        } else {
          it = g_watched.erase(it);
        }
      }
    }
    const ssize_t n = read(fd, msgs, sizeof msgs);
    if (n <= 0) continue;  // EAGAIN: nothing (a watchdog tick), or another wake-up took them
    const std::size_t count = static_cast<std::size_t>(n) / sizeof(struct uffd_msg);
    for (std::size_t i = 0; i < count; ++i) {
      if (msgs[i].event == UFFD_EVENT_REMOVE || msgs[i].event == UFFD_EVENT_UNMAP) {
        // The program dropped pages itself (madvise, munmap): they are missing again.
        forget_filled(msgs[i].arg.remove.start, msgs[i].arg.remove.end);
        continue;
      }
      if (msgs[i].event != UFFD_EVENT_PAGEFAULT) continue;
      const std::uintptr_t addr = msgs[i].arg.pagefault.address & ~(page - 1);
      bool seen = false;  // several threads on one page: the first fill wakes them all
      for (std::size_t j = 0; j < i && !seen; ++j) {
        seen = msgs[j].event == UFFD_EVENT_PAGEFAULT && (msgs[j].arg.pagefault.address & ~(page - 1)) == addr;
      }
      if (seen) {
        os::uffd_wake(fd, addr, page);  // the first fill normally woke it; never leave a thread asleep
        continue;
      }
      const Access access = (msgs[i].arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE) ? Access::write : Access::read;
      const bool wp = (msgs[i].arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP) != 0;
      const long tid = msgs[i].arg.pagefault.feat.ptid;
      // The trap epoch keeps the region alive while we use it (as in a fault handler).
      const unsigned side = trap::g_state.epoch.enter();
      detail::RegionImpl* r = lookup(addr);
      if (r == nullptr || r->uffd != fd) {
        os::uffd_wake(fd, addr, page);  // unregistered meanwhile: let the thread fault normally
      } else if (wp) {
        // Synchronous write tracking: record the page, then lift the protection (which wakes the writer).
        if (r->dirty != nullptr) {
          const std::size_t idx = (addr - r->base) / page;
          r->dirty[idx / 64].fetch_or(std::uint64_t{1} << (idx % 64), std::memory_order_release);
        }
        os::uffd_writeprotect(fd, addr, page, false);
      } else if (r->policy == Policy::pager && is_pager_thread(*r->pager, tid)) {
        poison_with(*r, addr, EDEADLK, "a thread of this region's pager touched an unfilled page of it");
      } else if (r->policy == Policy::pager) {
        post_to_pager(*r, addr, access, 0, tid);
      } else {
        std::size_t pages = 0;
        fill(*r, addr, access, 0, tid, bounce, bounce_size, &pages);
        note_filled(*r, addr, pages);
      }
      // A wake-up for good measure (not for pager requests, which the pager wakes when it is done): if
      // the page changed under us (evicted, written, dropped by the program) the thread simply faults
      // again and sends a new message; a lost wake-up would hang it.
      const bool rewake = !(r != nullptr && r->policy == Policy::pager && !wp);
      trap::g_state.epoch.exit(side);
      if (rewake) os::uffd_wake(fd, addr, page);
    }
  }
}

// Which of the fds serves a region: asynchronous write tracking has its own; synchronous write tracking
// and missing-page fills go to the handler thread's, unless self-service.
Kind kind_of(Policy policy, WriteTracking tracking, UffdMode mode) {
  if (policy == Policy::track_writes) return tracking == WriteTracking::async_wp ? Kind::wp_async : Kind::handler;
  return mode == UffdMode::self_service ? Kind::sigbus : Kind::handler;
}

}  // namespace

void note_filled(detail::RegionImpl& r, std::uintptr_t page_addr, std::size_t pages) {
  if (r.evict == nullptr || pages == 0) return;
  detail::EvictState& e = *r.evict;
  {
    std::lock_guard lock(e.mutex);
    e.fifo.emplace_back((page_addr - r.base) / core::page_size(), pages);
    e.resident += pages;
    if (e.resident <= e.max_resident || e.queued) return;
    e.queued = true;
  }
  r.inflight.fetch_add(1, std::memory_order_acq_rel);  // keeps the region alive while queued
  std::lock_guard lock(g_evict_mutex);
  if (!g_evictor_started) {
    std::thread(evictor_loop).detach();
    g_evictor_started = true;
  }
  g_evict_queue.push_back(&r);
  g_evict_cv.notify_one();
}

int probe(std::string* why) {
  int fd = open_uffd(why);
  if (fd < 0) return -1;
  struct uffdio_api api{};
  api.api = UFFD_API;
  api.features = features_of(Kind::handler);
  if (ioctl(fd, UFFDIO_API, &api) != 0) {
    *why = errno_text("UFFDIO_API (features this kernel lacks)", errno);
    close(fd);
    return -1;
  }
  return fd;
}

int fd_for(Kind kind, std::string* why) {
  std::lock_guard lock(g_mutex);
  return fd_locked(kind, why);
}

Backend choose(const RegionOptions& o, bool adopted, std::string* reason) {
  if (o.backend == Backend::signals) {
    *reason = "signals (requested)";
    return Backend::signals;
  }
  std::string why;
  if (o.policy == Policy::guard || o.policy == Policy::barrier) {
    why = std::string("the ") + policy_name(o.policy) + " policy needs the signal backend";
  } else if (adopted) {
    why = "adopted memory is served by the signal backend";
  } else if (o.policy == Policy::pager && o.uffd_mode == UffdMode::self_service) {
    why = "a pager region cannot be self-service";
  } else {
    const Kind kind = kind_of(o.policy, o.write_tracking, o.uffd_mode);
    std::lock_guard lock(g_mutex);
    if (fd_locked(kind, &why) >= 0) {
      if (kind != Kind::wp_async || pagemap_scan_works()) {
        *reason = kind == Kind::wp_async                 ? "userfaultfd (WP_ASYNC + PAGEMAP_SCAN)"
                  : o.policy == Policy::track_writes   ? "userfaultfd (synchronous write-protect)"
                  : kind == Kind::sigbus               ? "userfaultfd (self-service SIGBUS)"
                                                       : "userfaultfd (handler thread)";
        return Backend::userfaultfd;
      }
      why = "PAGEMAP_SCAN is not available on /proc/self/pagemap";
    }
  }
  if (o.backend == Backend::userfaultfd) {
    *reason = why;  // the caller turns this into an error
    return Backend::automatic;
  }
  *reason = "signals: " + why;
  return Backend::signals;
}

Result<void> attach(detail::RegionImpl& r) {
  const bool sync_wp = r.policy == Policy::track_writes && r.write_tracking == WriteTracking::sync_wp;
  const Kind kind = kind_of(r.policy, r.write_tracking, r.uffd_mode);
  if (sync_wp) {
    // Without WP_UNPOPULATED on this fd, only present pages can be write-protected: populate first.
    if (madvise(reinterpret_cast<void*>(r.base), r.end - r.base, MADV_POPULATE_WRITE) != 0) {
      return Error::from_errno("madvise MADV_POPULATE_WRITE (synchronous write tracking)", errno);
    }
  }
  std::string why;
  const int fd = fd_for(kind, &why);
  if (fd < 0) return Error(Errc::unsupported, "region '" + std::string(r.name) + "': userfaultfd: " + why);
  struct uffdio_register reg{};
  reg.range.start = r.base;
  reg.range.len = r.end - r.base;
  reg.mode = r.policy == Policy::track_writes ? UFFDIO_REGISTER_MODE_WP : UFFDIO_REGISTER_MODE_MISSING;
  if (r.writeback != nullptr) {
    // Filled pages are installed write-protected; their first write is a fault that marks them dirty.
    reg.mode |= UFFDIO_REGISTER_MODE_WP;
    const std::size_t words = ((r.end - r.base) / core::page_size() + 63) / 64;
    r.dirty_words = words;
    r.dirty = new std::atomic<std::uint64_t>[words];
    for (std::size_t i = 0; i < words; ++i) r.dirty[i].store(0, std::memory_order_relaxed);
  }
  if (ioctl(fd, UFFDIO_REGISTER, &reg) != 0) return Error::from_errno("UFFDIO_REGISTER", errno);
  r.uffd = fd;
  if (kind == Kind::handler) {
    // The handler thread starts with the first region that needs it (not when probing), so that a
    // process that only asks whether userfaultfd works stays single-threaded.
    std::lock_guard lock(g_mutex);
    if (!g_thread_started) {
      std::thread(handler_loop, fd).detach();
      g_thread_started = true;
    }
  }
  if (kind == Kind::handler && !sync_wp) {  // self-service faults never see another thread's duplicates
    const std::size_t words = ((r.end - r.base) / core::page_size() + 63) / 64;
    r.filled = new std::atomic<std::uint64_t>[words];
    for (std::size_t i = 0; i < words; ++i) r.filled[i].store(0, std::memory_order_relaxed);
  }
  if (r.policy == Policy::pager) {
    std::lock_guard lock(g_watch_mutex);
    g_watched.push_back(r.pager);
  }
  if (r.policy == Policy::track_writes && os::is_err(os::uffd_writeprotect(fd, r.base, r.end - r.base, true))) {
    return Error::from_errno("UFFDIO_WRITEPROTECT", errno);
  }
  return {};
}

void detach(detail::RegionImpl& r) noexcept {
  if (r.uffd < 0) return;
  struct uffdio_range range{r.base, r.end - r.base};
  ioctl(r.uffd, UFFDIO_UNREGISTER, &range);  // wakes any thread still waiting in the range
}

Result<void> collect_written(detail::RegionImpl& r, std::vector<std::size_t>* pages) {
  const std::size_t page = core::page_size();
  struct page_region out[64];
  std::uintptr_t start = r.base;
  while (start < r.end) {
    struct pm_scan_arg arg{};
    arg.size = sizeof arg;
    arg.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC;
    arg.start = start;
    arg.end = r.end;
    arg.vec = reinterpret_cast<std::uintptr_t>(out);
    arg.vec_len = 64;
    arg.category_mask = PAGE_IS_WRITTEN;
    arg.return_mask = PAGE_IS_WRITTEN;
    const int n = ioctl(g_pagemap, PAGEMAP_SCAN, &arg);
    if (n < 0) return Error::from_errno("PAGEMAP_SCAN", errno);
    for (int i = 0; i < n; ++i) {
      for (std::uintptr_t a = out[i].start; a < out[i].end; a += page) pages->push_back((a - r.base) / page);
    }
    if (arg.walk_end <= start) break;
    start = arg.walk_end;
  }
  return {};
}

}  // namespace faultline::region::uffd

namespace faultline {

const char* backend_name(Backend b) noexcept {
  switch (b) {
    case Backend::automatic: return "automatic";
    case Backend::signals: return "signals";
    case Backend::userfaultfd: return "userfaultfd";
  }
  return "?";
}

Result<void> userfaultfd_available() {
  // A probe of its own (opened and closed here): no cached fd, no handler thread.
  std::string why;
  const int fd = region::uffd::probe(&why);
  if (fd < 0) return Error(Errc::unsupported, "userfaultfd: " + why);
  close(fd);
  return {};
}

}  // namespace faultline
