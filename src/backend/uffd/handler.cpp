// backend/uffd/handler.cpp: the userfaultfd handler thread: reads fault messages in batches and fills
// them (or hands them to the region's pager), records synchronous write-protect faults, forgets pages the
// program dropped itself, and runs the watchdog of the pagers' detached requests. One per process. Not
// signal path.
#include <poll.h>
#include <pthread.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "backend/monitor.hpp"
#include "backend/uffd/uffd.hpp"
#include "core/page.hpp"
#include "os/linux/syscall.hpp"
#include "os/linux/thread_start.hpp"
#include "os/linux/uffd.hpp"
#include "pager/pager.hpp"
#include "region/table.hpp"
#include "region/thread_stats.hpp"
#include "trap/dispatcher.hpp"

namespace faultline::backend::uffd {

namespace {

std::mutex g_start_mutex;
unsigned g_threads_started = 0;  // handler threads running (they read the one fd, or one per kernel mask)
unsigned g_threads_wanted = 0;   // 0: the default (the CPUs, at most 4)
int g_served_fd = -1;            // the fd the latest threads read
unsigned g_threads_for_fd = 0;   // threads reading it
// Each handler thread's counters (ThreadStats), by the order they started. Never destroyed: the threads
// run until the process ends.
region::ThreadCounters g_thread_counters[64];

// The CPUs, at most 4; FAULTLINE_HANDLER_THREADS=N (1..64, read as secure_getenv reads it) overrides it.
unsigned default_threads() {
  if (const char* e = secure_getenv("FAULTLINE_HANDLER_THREADS"); e != nullptr && *e != '\0') {
    char* end = nullptr;
    const unsigned long n = std::strtoul(e, &end, 10);
    if (*end == '\0' && n >= 1 && n <= 64) return static_cast<unsigned>(n);
  }
  const unsigned cpus = std::thread::hardware_concurrency();
  return cpus == 0 ? 1 : cpus > 4 ? 4 : cpus;
}
std::mutex g_watch_mutex;
// Pagers with userfaultfd regions. Never destroyed: the detached handler thread may still read it while
// the process runs its static destructors at exit.
std::vector<std::weak_ptr<detail::PagerImpl>>& g_watched = *new std::vector<std::weak_ptr<detail::PagerImpl>>();

// The userfaultfd region of `fd` at addr, pinned (unpin it), or null.
UffdRegion* uffd_region_at(std::uintptr_t addr, int fd) noexcept {
  detail::RegionImpl* r = region::find_and_pin(addr);
  if (r == nullptr) return nullptr;
  if (r->backend() == Backend::userfaultfd && static_cast<UffdRegion*>(r)->fd == fd) return static_cast<UffdRegion*>(r);
  region::unpin(r);
  return nullptr;
}

// The program dropped pages itself (madvise, munmap): they are missing again.
void forget_filled(int fd, std::uintptr_t start, std::uintptr_t end) {
  const std::size_t page = core::page_size();
  for (std::uintptr_t a = start & ~(page - 1); a < end;) {
    UffdRegion* r = uffd_region_at(a, fd);
    if (r == nullptr) {
      a += page;
      continue;
    }
    const std::uintptr_t stop = end < r->end ? end : r->end;
    if (!r->filled.empty()) {
      for (; a < stop; a += page) r->filled.clear((a - r->base) / page);
    }
    a = stop;
    region::unpin(r);
  }
}

void expired(detail::RegionImpl& r, const FillRequest& req) {
  static_cast<UffdRegion&>(r).fail_page(r.base + req.offset, ETIMEDOUT, "the pager did not answer within fill_timeout",
                                        req.tid);
}

// The handler thread's loop. It never returns: a thread that stopped serving would leave every fault on
// its fd asleep for ever. Its buffer is mapped before it starts (start_handler), so it cannot fail to
// start serving; a transient poll() failure is retried.
// Asynchronous read-ahead goes at most this many pages beyond a sequential stream's last fault (2 MiB
// of 4 KiB pages: the kernel's own read-ahead of files goes as far).
constexpr std::size_t kAheadPages = 512;

[[noreturn]] void handler_loop(int fd, void* bounce, std::size_t bounce_size, region::ThreadCounters* counters) {
  pthread_setname_np(pthread_self(), "faultline-uffd");
  counters->tid.store(os::raw_gettid(), std::memory_order_relaxed);
  region::set_thread_counters(counters);
  const std::size_t page = core::page_size();
  struct uffd_msg msgs[64];
  for (;;) {
    struct pollfd pfd{fd, POLLIN, 0};
    // Wake up now and then for the watchdog of pager requests.
    if (poll(&pfd, 1, 50) < 0 && errno != EINTR) {
      struct timespec ts{0, 1'000'000};
      os::raw_nanosleep(&ts);
      continue;
    }
    {
      std::lock_guard lock(g_watch_mutex);
      const std::int64_t now = os::monotonic_ns();
      for (auto it = g_watched.begin(); it != g_watched.end();) {
        if (auto p = it->lock()) {
          pager::expire_detached(*p, now, expired);
          ++it;
        } else {
          it = g_watched.erase(it);
        }
      }
    }
    long n;
    {
      // UNMAP events are applied before anyone can act on their range (see backend/monitor.hpp).
      std::lock_guard events(monitor::event_mutex());
      n = os::raw_read(fd, msgs, sizeof msgs);
      for (long i = 0; i < n / static_cast<long>(sizeof(uffd_msg)); ++i) {
        if (msgs[i].event == UFFD_EVENT_UNMAP) monitor::mark_unmapped(msgs[i].arg.remove.start, msgs[i].arg.remove.end);
      }
    }
    if (n <= 0) continue;  // EAGAIN: nothing (a watchdog tick), or another wake-up took them
    const std::size_t count = static_cast<std::size_t>(n) / sizeof(struct uffd_msg);
    for (std::size_t i = 0; i < count; ++i) {
      if (msgs[i].event == UFFD_EVENT_REMOVE || msgs[i].event == UFFD_EVENT_UNMAP) {
        forget_filled(fd, msgs[i].arg.remove.start, msgs[i].arg.remove.end);
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
      // A pin keeps the region alive while we use it (as in a fault handler).
      UffdRegion* r = uffd_region_at(addr, fd);
      if (r != nullptr && !wp) r->counters.note_fault();
      bool rewake = true;
      if (r == nullptr) {
        // unregistered meanwhile: let the thread fault normally (the wake-up below)
      } else if (wp) {
        // Synchronous write tracking: record the page, then lift the protection (which wakes the writer);
        // unless an eviction holds the page: the writer sleeps until it is over (evict() wakes it).
        std::unique_lock wp_lock(r->wp_mutex);
        if (r->in_eviction(addr)) {
          rewake = false;
        } else if (!r->dirty.empty()) {
          r->dirty.set((addr - r->base) / page);
        }
        if (!rewake) {
          // held back
        } else if (const long rc = os::uffd_writeprotect(fd, addr, page, false); os::is_err(rc) && rc != -EAGAIN) {
          // The write cannot be let through: retrying would fault for ever. End it with the cause.
          char text[160];
          std::snprintf(text, sizeof text, "a write to page %zu could not be let through: UFFDIO_WRITEPROTECT failed: %s",
                        static_cast<std::size_t>((addr - r->base) / page), strerrorname_np(static_cast<int>(-rc)));
          r->set_failure(text);
          r->signal_thread(addr, tid);
          rewake = false;
        }
      } else if (r->policy == Policy::pager && pager::is_pager_thread(*r->pager, tid)) {
        r->fail_page(addr, EDEADLK, "a thread of this region's pager touched an unfilled page of it", tid);
      } else if (r->policy == Policy::pager) {
        pager::post_detached(*r, FillRequest{r->info(), addr - r->base, r->readahead_max * page, access, 0, tid, nullptr});
        rewake = false;  // the pager wakes the thread when it is done
      } else {
        // A cached region maps from its shmem cache (cache.cpp); the others copy through this thread's
        // buffer.
        // A fault that continues a sequential stream in a region that reads ahead (a batch may follow):
        // where it may (wake_deferrable), the thread installs without waking and wakes the faulting
        // thread once, after the read-ahead below (see "One wake-up per batch" there). Other faults are
        // woken by their install, as before.
        const bool defer = r->wake_deferrable() && r->reads_ahead() && addr == r->ra_next.load(std::memory_order_relaxed);
        auto fill = [&](std::uintptr_t at, long who, std::size_t* got, bool speculative) {
          return r->cached() ? r->fill_cached(at, access, who, got, speculative)
                             : r->fill(at, access, 0, who, bounce, bounce_size, got, store_fill_catching, speculative,
                                       !defer);
        };
        std::size_t pages = 0;
        fill(addr, tid, &pages, false);
        note_filled(*r, addr, pages);
        // The fill installed the faulting page, and UFFDIO_COPY / UFFDIO_ZEROPAGE woke its waiters (or the
        // wake-up below will). No other wake-up for it: by now the thread may be waiting on the page's
        // write protection (its write, retried), with that message already read by another handler
        // thread; a wake-up made it fault again, a second write-protect message for one write, which,
        // handled after a flush() had stored the write, marked the page dirty again (written back twice:
        // the Rust crate's test saw evict() return 2 for one write, 7 runs in 100 on a busy machine; 0 in
        // 4000 since).
        if (pages > 0) rewake = false;
        // Asynchronous read-ahead: a sequential stream at its widest window gets the windows after it
        // now, instead of at its next faults: the thread finds those pages present and pays no round
        // trip to this thread for them. The depth doubles while the stream goes on (1, 2, 4, ... windows,
        // up to kAheadPages pages) and falls back to 1 when a fault is not sequential (UffdRegion::fill).
        // A failure there fails nothing: the thread's own fault fills, or fails, the page.
        std::uintptr_t next = addr + pages * page;
        if (r->reads_ahead() && pages >= r->readahead_max && next < r->end) {
          const std::uint32_t depth = r->ahead_windows.load(std::memory_order_relaxed);
          for (std::uint32_t w = 0; w < depth && next < r->end; ++w) {
            std::size_t ahead = 0;
            if (fill(next, 0, &ahead, /*speculative=*/true) != 0 || ahead == 0) {
              break;
            }
            note_filled(*r, next, ahead);
            next += ahead * page;
          }
          const std::size_t cap = kAheadPages / pages > 0 ? kAheadPages / pages : 1;
          r->ahead_windows.store(static_cast<std::uint32_t>(depth * 2 > cap ? cap : depth * 2), std::memory_order_relaxed);
        }
        // One wake-up per batch: the faulting thread (and any other waiting in the range) is woken when
        // the faulting window and its read-ahead are all in, not as soon as its page is. Woken at once,
        // it raced this thread through the batch, caught up, faulted and waited again (42 faults for
        // 4096 pages instead of 10), and while it ran this thread's fills were slower (on these 2-vCPU
        // VMs a busy vCPU slows the other's UFFDIO_COPY from 0.53 to 0.93-1.07 us a page). Measured in
        // the same rounds, sequential first touch of 4096 pages: 1.03x the kernel's fault before, 0.89x
        // after (design notes). The price: the first access of a stream's batch waits for the batch (at
        // most readahead_max + kAheadPages pages).
        // This wake-up is the only one the faulting thread gets: a failure is retried, and if it
        // persists, the thread's access ends in SIGBUS with the cause rather than sleeping for ever.
        if (defer && next > addr) {
          long rc = os::uffd_wake(fd, addr, next - addr);
          for (int attempt = 0; attempt < 3 && os::is_err(rc); ++attempt) rc = os::uffd_wake(fd, addr, next - addr);
          if (os::is_err(rc)) {
            char text[160];
            std::snprintf(text, sizeof text, "the thread waiting on page %zu could not be woken: UFFDIO_WAKE failed: %s",
                          static_cast<std::size_t>((addr - r->base) / page), strerrorname_np(static_cast<int>(-rc)));
            r->set_failure(text);
            r->signal_thread(addr, tid);
          }
        }
      }
      if (r != nullptr) region::unpin(r);
      // A wake-up for good measure: if the page changed under us (evicted, written, dropped by the
      // program) the thread simply faults again and sends a new message; a lost wake-up would hang it.
      if (rewake) os::uffd_wake(fd, addr, page);
    }
  }
}

}  // namespace

Result<void> start_handler(int fd) {
  std::lock_guard lock(g_start_mutex);
  const unsigned wanted = g_threads_wanted != 0 ? g_threads_wanted : default_threads();
  // A new fd (the kernel mask changed: the fds are opened anew, kernel_mask.hpp) gets threads of its own;
  // the old fd's keep serving the regions registered with it.
  if (fd != g_served_fd) {
    g_served_fd = fd;
    g_threads_for_fd = 0;
  }
  while (g_threads_for_fd < wanted && g_threads_started < std::size(g_thread_counters)) {
    // The fill buffer first: once a thread runs, nothing may keep it from serving.
    const std::size_t bounce_size = 512 * core::page_size();
    const long bounce = os::raw_mmap(nullptr, bounce_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    Result<std::thread> started = Error(Errc::system_error, "");
    if (os::is_err(bounce)) {
      started = Error::from_errno("userfaultfd: mmap of the handler thread's buffer", static_cast<int>(-bounce));
    } else {
      region::ThreadCounters* counters = &g_thread_counters[g_threads_started];
      started = os::start_thread("userfaultfd handler thread", [fd, bounce, bounce_size, counters] {
        handler_loop(fd, reinterpret_cast<void*>(bounce), bounce_size, counters);
      });
      if (!started) os::raw_munmap(reinterpret_cast<void*>(bounce), bounce_size);
    }
    if (!started) {
      // The first thread is required; more are a speed-up: with at least one serving, go on with fewer.
      if (g_threads_for_fd == 0) return started.error();
      break;
    }
    started.value().detach();
    ++g_threads_started;
    ++g_threads_for_fd;
  }
  if (g_threads_for_fd == 0) {
    return Error(Errc::unsupported, "userfaultfd: no handler thread can be started for a new fd (" +
                                        std::to_string(g_threads_started) + " run already, the most there can be)");
  }
  return {};
}

void watch_pager(const std::shared_ptr<detail::PagerImpl>& pager) {
  std::lock_guard lock(g_watch_mutex);
  g_watched.push_back(pager);
}

void handler_lock_for_fork() {
  g_start_mutex.lock();
  g_watch_mutex.lock();
}
void handler_unlock_after_fork() {
  g_watch_mutex.unlock();
  g_start_mutex.unlock();
}
void handler_forget_after_fork() {
  g_threads_started = 0;
  g_served_fd = -1;
  g_threads_for_fd = 0;
  for (auto& c : g_thread_counters) {  // a new set of threads: new counters
    c.tid.store(0, std::memory_order_relaxed);
    for (auto* a : {&c.faults, &c.fills, &c.pages_filled, &c.readahead_pages, &c.failures, &c.pages_evicted,
                    &c.pages_written_back, &c.fill_ns}) {
      a->store(0, std::memory_order_relaxed);
    }
  }
  g_watched.clear();
}

}  // namespace faultline::backend::uffd

namespace faultline {

Result<void> set_userfaultfd_handler_threads(unsigned n) {
  if (n == 0 || n > 64) {
    return Error(Errc::invalid_argument, "set_userfaultfd_handler_threads: " + std::to_string(n) + " is not 1..64");
  }
  std::lock_guard lock(backend::uffd::g_start_mutex);
  backend::uffd::g_threads_wanted = n;
  return {};
}

unsigned userfaultfd_handler_threads() noexcept {
  std::lock_guard lock(backend::uffd::g_start_mutex);
  return backend::uffd::g_threads_started;
}

std::vector<ThreadStats> userfaultfd_handler_thread_stats() {
  std::lock_guard lock(backend::uffd::g_start_mutex);
  std::vector<ThreadStats> out;
  out.reserve(backend::uffd::g_threads_started);
  for (unsigned i = 0; i < backend::uffd::g_threads_started; ++i) {
    out.push_back(backend::uffd::g_thread_counters[i].snapshot());
  }
  return out;
}

}  // namespace faultline
