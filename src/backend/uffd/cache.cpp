// backend/uffd/cache.cpp: provider regions over a shmem cache (FillPath::shmem_cache): the memfd and its
// two mappings, filling the cache in place and mapping its pages into the region with UFFDIO_CONTINUE,
// dropping pages from it. Not signal path: the handler thread fills, and discard(), flush() and evict()
// drop, under the region's cache_mutex.
//
// Why a cache. The copy path (fill_sig.cpp) has the store write a buffer, and UFFDIO_COPY allocate a
// private page and copy the buffer into it: two copies a page. Here the store writes the page's home in
// the memfd (the file store: one pread straight into it), and the region, a private mapping of the same
// memfd registered for missing and minor faults, gets the page by UFFDIO_CONTINUE, which only maps it.
//
// Which pages the cache holds is asked of the kernel (mincore on the shared view), not remembered: the
// kernel's answer is exact after a drop, a failed fill or the program's own madvise.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "backend/uffd/uffd.hpp"
#include "core/page.hpp"
#include "os/linux/syscall.hpp"
#include "os/linux/uffd.hpp"
#include "region/table.hpp"

namespace faultline::backend::uffd {

Result<void> map_cache(UffdRegion& r, const RegionOptions& o) {
  const std::size_t size = r.end - r.base;
  const long fd = os::raw_memfd_create("faultline-cache", MFD_CLOEXEC);
  if (os::is_err(fd)) return Error::from_errno("memfd_create (the region's shmem cache)", static_cast<int>(-fd));
  auto fail = [&](const char* what, long rc) -> Result<void> {
    os::raw_close(static_cast<int>(fd));
    return Error::from_errno(what, static_cast<int>(-rc));
  };
  if (const long rc = os::raw_ftruncate(static_cast<int>(fd), static_cast<long>(size)); os::is_err(rc)) {
    return fail("ftruncate (the region's shmem cache)", rc);
  }
  // Its inode names the region's mappings (UffdRegion::memory_is_ours).
  struct stat st{};
  if (fstat(static_cast<int>(fd), &st) != 0) return fail("fstat (the region's shmem cache)", -errno);
  const long view = os::raw_mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, static_cast<int>(fd), 0);
  if (os::is_err(view)) return fail("mmap (the shmem cache's view)", view);
  // The region itself: a private mapping of the memfd over the anonymous range just reserved (MAP_FIXED
  // replaces it in one step, so the range is never free for another mapping to take).
  const long p = os::raw_mmap(reinterpret_cast<void*>(r.base), size, region::prot_of(o.perms),
                              MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, static_cast<int>(fd), 0);
  if (os::is_err(p)) {
    os::raw_munmap(reinterpret_cast<void*>(view), size);
    return fail("mmap (the region over its shmem cache)", p);
  }
  r.cache_inode = static_cast<std::uint64_t>(st.st_ino);
  r.cache_fd = static_cast<int>(fd);
  r.cache_view = reinterpret_cast<std::byte*>(view);
  r.cache_on = true;
  return {};
}

void UffdRegion::release_cache() noexcept {
  if (cache_view != nullptr) os::raw_munmap(cache_view, end - base);
  if (cache_fd >= 0) os::raw_close(cache_fd);
  cache_view = nullptr;
  cache_fd = -1;
  cache_on = false;
}

Result<void> UffdRegion::drop_cached(std::size_t first, std::size_t count) {
  const std::size_t page = core::page_size();
  std::lock_guard lock(cache_mutex);
  const long rc = os::raw_fallocate(cache_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<long>(first * page),
                                    static_cast<long>(count * page));
  if (os::is_err(rc)) {
    return Error::from_errno(("region '" + std::string(name) + "': fallocate PUNCH_HOLE (dropping pages from the shmem cache)").c_str(),
                             static_cast<int>(-rc));
  }
  return {};
}

int UffdRegion::fill_cached(std::uintptr_t page_addr, Access access, long tid, std::size_t* filled_pages,
                            bool speculative) noexcept {
  if (filled_pages != nullptr) *filled_pages = 0;
  const std::size_t page = core::page_size();
  if (failed_before(page_addr, tid, speculative)) return EIO;
  constexpr std::size_t kMaxPages = 512;
  std::size_t len = window_at(page_addr, kMaxPages * page, speculative);
  const std::size_t off = page_addr - base;
  const std::int64_t t0 = os::monotonic_ns();
  std::unique_lock lock(cache_mutex);
  // Which of the window's pages the cache holds already (filled before, then dropped from the region
  // only, or read ahead).
  unsigned char held[kMaxPages];
  if (const long rc = os::raw_mincore(cache_view + off, len, held); os::is_err(rc)) {
    lock.unlock();
    if (speculative) return static_cast<int>(-rc);
    fail_page(page_addr, static_cast<int>(-rc), "mincore of the shmem cache failed", tid);
    return static_cast<int>(-rc);
  }
  // The store fills the runs the cache lacks, in place.
  const std::size_t n = len / page;
  for (std::size_t i = 0; i < n;) {
    if ((held[i] & 1) != 0) {
      ++i;
      continue;
    }
    std::size_t j = i + 1;
    while (j < n && (held[j] & 1) == 0) ++j;
    const FillRequest req{info(), off + i * page, (j - i) * page, access, 0, i == 0 ? tid : 0, cache_view + off + i * page,
                          cache_fd, off + i * page};
    const FillStatus st = store_fill_catching(*store, req);
    if (st.error != 0) {
      // What the store wrote before it failed must not be taken for the page: drop the run. Should even
      // that fail, the run's pages are failed for good (each access to one ends in SIGBUS) rather than
      // mapped with partial contents.
      const long rc = os::raw_fallocate(cache_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                        static_cast<long>(off + i * page), static_cast<long>((j - i) * page));
      if (os::is_err(rc) && !failed.empty()) {
        for (std::size_t k = i; k < j; ++k) failed.set(off / page + k);
      }
      if (i == 0) {  // the faulting page's own run
        lock.unlock();
        const int err = st.error > 0 ? st.error : EIO;
        if (!speculative) fail_page(page_addr, err, st.reason, tid);
        return err;
      }
      len = i * page;  // map what comes before the failed run; its pages fault (and fail) on their own
      break;
    }
    i = j;
  }
  std::size_t done = 0;
  long rc = os::uffd_continue(fd, page_addr, len, &done, write_back_enabled);
  lock.unlock();
  if (!os::is_err(rc)) done = len;
  if (filled_pages != nullptr) *filled_pages = done / page;
  if (done != 0) counters.note_fill(done / page, os::monotonic_ns() - t0, speculative);
  // As for UFFDIO_COPY (fill_sig.cpp): a page mapped already (EEXIST), a changing address space (EAGAIN),
  // a mapping changed or gone (ENOENT) and an exiting process (ESRCH) are retried by the faulting
  // thread; anything else fails the page with the cause.
  const bool retry = rc == -EEXIST || rc == -EAGAIN || rc == -ENOENT || rc == -ESRCH;
  if (os::is_err(rc) && done == 0 && !retry) {
    const int err = static_cast<int>(-rc);
    if (!speculative) fail_page(page_addr, err, "the kernel could not map the cached page (UFFDIO_CONTINUE)", tid);
    return err;
  }
  if (os::is_err(rc) && done == 0) os::uffd_wake(fd, page_addr, page);
  return 0;
}

}  // namespace faultline::backend::uffd
