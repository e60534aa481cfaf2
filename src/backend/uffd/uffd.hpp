// backend/uffd/uffd.hpp: the userfaultfd backend.
//
// A region is private anonymous memory (mapped with the region's own protection) registered with a
// userfaultfd; missing pages (and, for dirty tracking, write-protect faults) reach faultline without any
// mprotect:
//   uffd.cpp      the fds (one per feature set), choosing, registering, collecting dirty pages,
//                 discarding, write-back, serving pager requests;
//   handler.cpp   the handler thread: reads fault messages in batches and fills them, watches the
//                 pagers' detached requests;
//   evictor.cpp   the resident-page watermark: a thread that evicts the oldest filled windows;
//   remote.cpp    a pager region served by another process (the program's side);
//   cache.cpp     provider regions over a shmem cache (FillPath::shmem_cache): the memfd, filling it in
//                 place and mapping its pages with UFFDIO_CONTINUE, dropping them;
//   fill_sig.cpp  filling a missing page and its read-ahead window, failing (poisoning) a page, and the
//                 self-service SIGBUS path (signal path).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "core/page.hpp"
#include "region/impl.hpp"

namespace faultline::backend::uffd {

// The fds, one per feature set (features are per fd): the handler thread's, the self-service one
// (UFFD_FEATURE_SIGBUS), and the asynchronous write-protect one (UFFD_FEATURE_WP_ASYNC).
enum class Kind { handler, sigbus, wp_async };

// The watermark (max_resident_pages): the filled windows in the order they were filled, and how many
// pages are resident. The handler and pager threads update it.
struct EvictState {
  std::mutex mutex;
  std::deque<std::pair<std::size_t, std::size_t>> fifo;  // (first page, pages)
  std::size_t resident = 0;
  std::size_t max_resident = 0;
  bool queued = false;  // waiting for the evictor thread
};

class UffdRegion final : public detail::RegionImpl {
 public:
  UffdRegion(const RegionOptions& o, std::uintptr_t base, std::size_t size);
  ~UffdRegion() override;

  Backend backend() const noexcept override { return Backend::userfaultfd; }
  Result<void> attach() override;
  void release_helpers() noexcept override;
  void detach() noexcept override;
  void unmap() noexcept override;
  bool memory_is_ours() const noexcept override;
  Disposition on_fault(FaultContext& ctx) noexcept override;         // fill_sig.cpp
  void describe_backend(core::Formatter& f) const noexcept override;  // fill_sig.cpp
  Result<void> collect_dirty(std::vector<std::size_t>& pages, ProtectBatch* defer) override;
  Result<void> protect(std::size_t first, std::size_t count, unsigned perms) override;
  Result<void> discard(std::size_t first, std::size_t count) override;
  Result<std::size_t> write_back(std::size_t first, std::size_t count) override;  // takes evict_mutex
  Result<std::size_t> write_back_locked(std::size_t first, std::size_t count);    // evict_mutex held
  // Writes back, then drops, holding back every write to the range meanwhile: a write fault there is
  // not let through (the handler thread leaves the writer asleep, see in_eviction) until the pages are
  // gone, then the writer is woken and faults the page in again, from the store that has its last
  // contents. Without this, a write between the store and the drop would be lost.
  Result<std::size_t> evict(std::size_t first, std::size_t count) override;
  // Handler thread, on a write-protect fault at `addr`, with wp_mutex held: true while an eviction
  // covers the page (the write must wait for it).
  bool in_eviction(std::uintptr_t addr) const noexcept {
    const std::uint64_t e = evicting.load(std::memory_order_acquire);
    if (e == 0) return false;
    const std::size_t page = (addr - base) / core::page_size(), first = (e >> 24) - 1, count = e & 0xffffff;
    return page >= first && page < first + count;
  }
  void serve(detail::PagerImpl& pager, detail::PagerSlot& slot) override;
  void after_fork_in_child() noexcept override;  // fill_sig.cpp

  // Fills the missing page at `page_addr` (and the read-ahead window after it) from the current thread:
  // the handler thread, a pager thread, or the faulting thread in self-service mode (signal path).
  // Returns 0, or an errno value after failing the page (the cause is recorded). *filled gets the pages
  // filled. fill_sig.cpp.
  // `call` runs the store's fill: store_fill (signal path) or store_fill_catching (threads).
  using StoreCall = FillStatus (*)(Store& store, const FillRequest& req) noexcept;
  // `speculative`: asynchronous read-ahead (the handler thread fills the window after a sequential
  // stream's last one before anyone faults there): a failure fails no page (a later fault there fills,
  // or fails, for real), and all its pages count as read ahead.
  // `wake` false: the install does not wake the threads waiting on the pages it fills
  // (UFFDIO_*_MODE_DONTWAKE); the caller wakes them (see wake_deferrable). Failures still wake.
  int fill(std::uintptr_t page_addr, Access access, std::uintptr_t pc, long tid, void* bounce,
           std::size_t bounce_size, std::size_t* filled, StoreCall call, bool speculative = false,
           bool wake = true) noexcept;
  // Whether the handler thread may install a sequential stream's pages without waking it and wake it
  // once, when the whole batch is in (handler.cpp). Not for regions registered for write protection
  // (write-back): a second wake-up can reach a thread already waiting on a page's write protection and
  // make it fault again, a second message for one write (see the handler loop); not for huge pages (a
  // fill starts at the huge page, not at the fault) nor the shmem cache (its own path).
  bool wake_deferrable() const noexcept { return !write_back_enabled && huge == 0 && !cache_on; }
  // Whether the handler thread reads ahead of this region's sequential streams (asynchronous read-ahead,
  // handler.cpp): asked for, windows of more than a page, no huge pages, no resident-page watermark
  // (what is read ahead would only be evicted again).
  bool reads_ahead() const noexcept { return async_readahead && readahead_max > 1 && huge == 0 && watermark == nullptr; }
  // A page failed before without UFFDIO_POISON (see fail_page): fails this access to it the same way
  // (unless `speculative`) and returns true. Signal path.
  bool failed_before(std::uintptr_t page_addr, long tid, bool speculative) noexcept;
  // The read-ahead window for a fault at `page_addr`, in bytes (at most `limit`), and the read-ahead
  // state moved on past it. Signal path.
  std::size_t window_at(std::uintptr_t page_addr, std::size_t limit, bool speculative) noexcept;

  // ---- the shmem cache (FillPath::shmem_cache; cache.cpp, handler and caller threads, not signal path)
  // The region is a private mapping of `cache_fd` (a memfd as large as the region); `cache_view` a shared
  // mapping of it, where the store fills pages in place. A page in the cache but not in the region's
  // page tables is a minor fault, mapped by UFFDIO_CONTINUE; one not in the cache a missing fault, which
  // fills the cache first. The program's writes go to private copies, never into the cache, so the cache
  // only ever holds what the store returned; a page dropped from the region is dropped from the cache
  // first (discard), so that it is read from the store again.
  // False in a forked child: the memfd is the parent's cache (the child fills its own pages privately).
  bool cached() const noexcept { return cache_on; }
  // fill()'s counterpart for cached regions (the handler thread): fills the window's pages the cache
  // lacks from the store (in runs), then maps the window. Same contract as fill().
  int fill_cached(std::uintptr_t page_addr, Access access, long tid, std::size_t* filled, bool speculative) noexcept;
  // Drops pages [first, first + count) from the cache (fallocate PUNCH_HOLE), which also unmaps them
  // from the region where the program did not write them. Errors: the fallocate's.
  Result<void> drop_cached(std::size_t first, std::size_t count);
  // Unmaps the cache's view and closes its memfd (the destructor).
  void release_cache() noexcept;
  int cache_fd = -1;
  std::byte* cache_view = nullptr;
  bool cache_on = false;
  std::uint64_t cache_inode = 0;  // the memfd's: the region's mappings are of it (memory_is_ours)
  std::mutex cache_mutex;      // one fill or drop of the cache at a time
  detail::PageBits in_cache;   // pages the store has filled into the cache (under cache_mutex)
  // Fails the missing page at `page_addr` and records why: UFFDIO_POISON, so that the faulting thread, and
  // any later access, gets SIGBUS; on kernels without it (before 6.6), a SIGBUS queued to the faulting
  // thread `tid` (UFFD_FEATURE_THREAD_ID; 0 when unknown), and the page is remembered as failed so that
  // each later fault on it is failed the same way. Signal path.
  void fail_page(std::uintptr_t page_addr, int err, const char* reason, long tid = 0) noexcept;
  // The second half of fail_page(): poison the page, or queue the SIGBUS. Signal path. False when
  // nobody was failed (the page exists already: its waiters are woken).
  bool deliver_failure(std::uintptr_t page_addr, long tid) noexcept;
  // on_fault()'s fill of a self-service fault, through a buffer on this stack. Signal path.
  [[gnu::noinline]] int self_service_fill(FaultContext& ctx) noexcept;
  // Ends thread `tid`'s access to page_addr with SIGBUS (queued; the thread waits in the kernel) and wakes
  // it: for a present page, which cannot be poisoned. Signal path.
  void signal_thread(std::uintptr_t page_addr, long tid) noexcept;

  Kind kind() const noexcept;

  int fd = -1;  // the userfaultfd the range is registered with
  UserfaultfdMode mode = UserfaultfdMode::handler_thread;
  DirtyTracking tracking = DirtyTracking::async_wp;  // resolved: never automatic
  detail::PageBits filled;  // handler-thread fills: a bit per page already filled (duplicate messages)
  detail::PageBits dirty;   // sync_wp tracking and write-back: written pages
  std::size_t readahead_max = 64;
  std::size_t huge = 0;       // huge_pages: hugetlbfs pages of this size, each filled whole
  std::size_t run_align = 0;  // the store's preferred_run_pages(): windows end at its boundaries
  std::atomic<std::uint32_t> ra_window{1};
  std::atomic<std::uintptr_t> ra_next{0};  // the page after the last window filled
  bool async_readahead = true;                  // RegionOptions::async_readahead
  std::atomic<std::uint32_t> ahead_windows{1};  // asynchronous read-ahead's depth, in windows (handler.cpp)
  std::unique_ptr<EvictState> watermark;   // max_resident_pages set
  std::mutex evict_mutex;                  // one eviction at a time
  std::mutex wp_mutex;                     // orders the handler's lifting of write protection and evict()
  std::atomic<std::uint64_t> evicting{0};  // the range evict() holds: (first page + 1) << 24 | pages; 0: none
  // Write-back regions: a fill whose store read began before a discard must not install its (possibly
  // older) pages after it. discard() bumps `dropped` under `install_lock` before it drops the pages (a
  // write-back, if any, is done by then); a fill notes `dropped` before it asks the store and installs
  // under the lock only if it has not moved (otherwise it wakes the thread, which faults again). A spin
  // lock: fills run in signal-path code, and a fill holds it for one UFFDIO_COPY.
  std::atomic<std::uint64_t> dropped{0};
  std::atomic<bool> install_lock{false};
  void lock_install() noexcept {
    while (install_lock.exchange(true, std::memory_order_acquire)) {
      while (install_lock.load(std::memory_order_relaxed)) {
      }
    }
  }
  void unlock_install() noexcept { install_lock.store(false, std::memory_order_release); }
  int remote_sock = -1;                    // remote pager: the socket to the pager process
  int remote_stop = -1;                    // remote pager: eventfd that ends the watchdog
  long remote_uid = -1, remote_pid = 0;    // remote pager: the credentials required of it
  detail::PageBits failed;                 // pages failed without UFFDIO_POISON (see fail_page)
  // In a forked child: the child's own userfaultfd serves the region in its faulting threads (SIGBUS
  // mode), since the parent's fd and threads are not the child's; or, when that cannot be had, the
  // region is made inaccessible and every access fails with the cause (`child_unserved`).
  bool child_served = false;
  bool unmap_events = false;  // the fd's UNMAP events are read (see memory_is_ours)
  bool child_unserved = false;
};

// Whether an install that filled nothing (UFFDIO_COPY, ZEROPAGE, CONTINUE) is the faulting thread's to
// retry rather than a failure of the page: it exists already (-EEXIST), the address space is changing
// (-EAGAIN), the mapping changed or went away under the fill (-ENOENT: the next attempt meets whatever is
// there now), or the process is exiting (-ESRCH). Signal path.
inline bool install_retried(long rc) noexcept { return rc == -EEXIST || rc == -EAGAIN || rc == -ENOENT || rc == -ESRCH; }

// Store::fill as called from the faulting thread's handler (signal path), and from faultline's threads,
// where an exception from the store becomes EIO.
FillStatus store_fill(Store& store, const FillRequest& req) noexcept;
FillStatus store_fill_catching(Store& store, const FillRequest& req) noexcept;

// This process's /proc/self/pagemap (PAGEMAP_SCAN, page presence), opened once per process (a forked
// child opens its own); -1 when it cannot be opened. Async-signal-safe (fill_sig.cpp).
int pagemap_fd() noexcept;

// Chooses whether a region with these options can be served by userfaultfd: true, with the reason
// ("userfaultfd (handler thread)"), or false with why not. *shmem_cache: whether its pages live in a
// shmem cache (FillPath: the options, and the features of the handler thread's fd), decided with the
// rest and said in the reason.
bool usable(const RegionOptions& o, std::string* reason, bool* shmem_cache);
// cache.cpp: makes `r` (anonymous memory just mapped) a private mapping of a new memfd, and maps the
// memfd's shared view. On failure *range_lost says whether the region's own range may have been
// unmapped (the last step failed); otherwise nothing changed.
Result<void> map_cache(UffdRegion& r, const RegionOptions& o, bool* range_lost);
// Whether UFFDIO_CONTINUE takes UFFDIO_CONTINUE_MODE_WP (Linux 6.4; no feature bit says so), tried on
// one page of a memfd of its own, registered with a userfaultfd of its own: 1 yes, 0 no, -1 no answer
// (the probe's own set-up failed: ask again next time).
int continue_wp_works();
// The dirty tracking a track_dirty region of these options gets (DirtyTracking::automatic made concrete).
DirtyTracking resolve_tracking(const RegionOptions& o);
// Maps `size` bytes for a new region, over a shmem cache when `shmem_cache` (usable() said so). Nothing
// stays mapped on failure. When FillPath::automatic's cache cannot be set up, the region copies instead
// and its backend_reason (`reason`, as usable() gave it) says why.
Result<std::unique_ptr<detail::RegionImpl>> create(std::size_t size, const RegionOptions& o, bool shmem_cache,
                                                    const std::string& reason);

// Opens (once per process) the fd of `kind`; -1 and `why` when the kernel does not offer it.
int fd_for(Kind kind, std::string* why);
// Opens a userfaultfd with the handler features and returns it (the caller closes it), or -1 and why.
int probe(std::string* why);

// handler.cpp: starts the handler thread for `fd` if it is not running; watches `r`'s pager.
Result<void> start_handler(int fd);
void watch_pager(const std::shared_ptr<detail::PagerImpl>& pager);
// evictor.cpp: counts pages filled against the region's watermark; wakes the evictor when it is exceeded.
void note_filled(UffdRegion& r, std::uintptr_t page_addr, std::size_t pages);
// Starts the evictor thread if it is not running (the first region with a watermark).
Result<void> start_evictor();
// remote.cpp: a region served by the pager process at the other end of `sock`.
Result<void> attach_remote(UffdRegion& r, int sock);
void stop_remote(UffdRegion& r) noexcept;

// fork: each part's locks, taken around fork, and what a child forgets (the fds and threads belong to
// the parent). uffd.cpp registers the handlers once.
void handler_lock_for_fork();
void handler_unlock_after_fork();
void handler_forget_after_fork();
void evictor_lock_for_fork();
void evictor_unlock_after_fork();
void evictor_forget_after_fork();

}  // namespace faultline::backend::uffd
