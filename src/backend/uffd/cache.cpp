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
// Which pages the store has filled is remembered (`in_cache`, set and cleared under the cache mutex), not
// asked of the kernel: the cache may hold a page the store never wrote (shmem huge pages allocate a whole
// folio for one page; a run whose fill failed; a punch that failed), and such a page is filled again.
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

Result<void> map_cache(UffdRegion& r, const RegionOptions& o, bool* range_lost) {
  *range_lost = false;
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
    *range_lost = true;  // a failed MAP_FIXED may have unmapped what it was to replace
    return fail("mmap (the region over its shmem cache)", p);
  }
  r.cache_inode = static_cast<std::uint64_t>(st.st_ino);
  r.cache_fd = static_cast<int>(fd);
  r.cache_view = reinterpret_cast<std::byte*>(view);
  r.cache_on = true;
  r.in_cache = detail::PageBits((r.end - r.base) / core::page_size());
  return {};
}

int continue_wp_works() {
  const std::size_t page = core::page_size();
  // A userfaultfd of its own, without events: whatever fails below, the probe's munmap waits for nobody.
  const os::UffdOpened opened = os::uffd_open_with(UFFD_FEATURE_MINOR_SHMEM | UFFD_FEATURE_WP_HUGETLBFS_SHMEM, 0);
  if (os::is_err(opened.fd)) return -1;
  const int ufd = static_cast<int>(opened.fd);
  const long fd = os::raw_memfd_create("faultline-probe", MFD_CLOEXEC);
  if (os::is_err(fd)) {
    os::raw_close(ufd);
    return -1;
  }
  int answer = -1;  // no answer until UFFDIO_CONTINUE itself has been tried
  const long m = os::is_err(os::raw_ftruncate(static_cast<int>(fd), static_cast<long>(page)))
                     ? -EINVAL
                     : os::raw_mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_PRIVATE, static_cast<int>(fd), 0);
  if (!os::is_err(m)) {
    const auto at = static_cast<std::uintptr_t>(m);
    static const char zero[64] = {};
    if (!os::is_err(os::uffd_register(ufd, at, page, UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR |
                                                       UFFDIO_REGISTER_MODE_WP)) &&
        os::raw_pwrite(static_cast<int>(fd), zero, sizeof zero, 0) == static_cast<long>(sizeof zero)) {
      std::size_t done = 0;
      const long rc = os::uffd_continue(ufd, at, page, &done, true);
      answer = !os::is_err(rc) ? 1 : rc == -EINVAL ? 0 : -1;  // EINVAL: the mode is unknown
    }
    os::uffd_unregister(ufd, at, page);
    os::raw_munmap(reinterpret_cast<void*>(m), page);
  }
  os::raw_close(static_cast<int>(fd));
  os::raw_close(ufd);
  return answer;
}

void UffdRegion::release_cache() noexcept {
  if (cache_view != nullptr) os::raw_munmap(cache_view, end - base);
  if (cache_fd >= 0) os::raw_close(cache_fd);
  cache_view = nullptr;
  cache_fd = -1;
  cache_on = false;
}

namespace {

// Drops pages [first, first + count) of the cache memfd `fd`: 0 or -errno.
long punch(int fd, std::size_t first, std::size_t count) noexcept {
  const std::size_t page = core::page_size();
  return os::raw_fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<long>(first * page),
                           static_cast<long>(count * page));
}

}  // namespace

Result<void> UffdRegion::drop_cached(std::size_t first, std::size_t count) {
  std::lock_guard lock(cache_mutex);
  // Forgotten whether or not the punch works: a page the store has not filled (as far as the bits say)
  // is filled again before it is mapped, over whatever the cache still holds.
  in_cache.clear_range(first, count);
  if (const long rc = punch(cache_fd, first, count); os::is_err(rc)) {
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
  std::size_t len = window_at(page_addr, 512 * page, speculative);
  const std::size_t off = page_addr - base, first = off / page;
  const std::int64_t t0 = os::monotonic_ns();
  std::unique_lock lock(cache_mutex);
  // The store fills the runs of the window it has not filled yet (`in_cache`), in place; the pages it
  // has were filled before and dropped from the region only (the program's own madvise), or read ahead.
  const std::size_t n = len / page;
  for (std::size_t i = 0; i < n;) {
    if (in_cache.test(first + i)) {
      ++i;
      continue;
    }
    std::size_t j = i + 1;
    while (j < n && !in_cache.test(first + j)) ++j;
    const FillRequest req{info(), off + i * page, (j - i) * page, access, 0, i == 0 ? tid : 0, cache_view + off + i * page,
                          cache_fd, off + i * page};
    const FillStatus st = store_fill_catching(*store, req);
    if (st.error != 0) {
      // What the store wrote before it failed is not taken for the pages: their bits stay clear, so
      // whoever fills them next writes them whole. The run is dropped from the cache too (memory only:
      // a failure there changes nothing else).
      (void)punch(cache_fd, first + i, j - i);
      if (i == 0) {  // the faulting page's own run
        lock.unlock();
        const int err = st.error > 0 ? st.error : EIO;
        if (!speculative) fail_page(page_addr, err, st.reason, tid);
        return err;
      }
      len = i * page;  // map what comes before the failed run; its pages fault (and fill or fail) on their own
      break;
    }
    for (std::size_t k = i; k < j; ++k) in_cache.set(first + k);
    i = j;
  }
  std::size_t done = 0;
  long rc = os::uffd_continue(fd, page_addr, len, &done, write_back_enabled);
  lock.unlock();
  if (!os::is_err(rc)) done = len;
  if (filled_pages != nullptr) *filled_pages = done / page;
  if (done != 0) counters.note_fill(done / page, os::monotonic_ns() - t0, speculative);
  // As for UFFDIO_COPY (install_retried): retried by the faulting thread, or the page fails with the cause.
  const bool retry = install_retried(rc);
  if (os::is_err(rc) && done == 0 && !retry) {
    const int err = static_cast<int>(-rc);
    if (!speculative) fail_page(page_addr, err, "the kernel could not map the cached page (UFFDIO_CONTINUE)", tid);
    return err;
  }
  if (os::is_err(rc) && done == 0) os::uffd_wake(fd, page_addr, page);
  return 0;
}

}  // namespace faultline::backend::uffd
