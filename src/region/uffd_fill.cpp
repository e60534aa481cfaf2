// region/uffd_fill.cpp: filling missing pages of userfaultfd regions (signal path: the self-service
// SIGBUS handler runs it in the faulting thread; the handler thread runs it too).
//
// Read-ahead: a fault at the page right after the last window filled doubles the window (up to
// readahead_max pages); any other fault halves it (down to one page). Races between threads only make
// the window a little off; ZEROPAGE/COPY stop at the first page that already exists (-EEXIST with a
// partial count) and wake whoever waits on what they filled; when nothing was filled the faulting page
// already exists and its waiters are woken explicitly.
#include <sys/mman.h>

#include <atomic>
#include <cerrno>

#include "core/format.hpp"
#include "core/page.hpp"
#include "os/linux/errnames.hpp"
#include "os/linux/uffd.hpp"
#include "region/uffd.hpp"

namespace faultline::region {

void set_failure(detail::RegionImpl& r, const char* text) noexcept {
  while (r.last_failure_busy.exchange(true, std::memory_order_acquire)) {
  }
  std::size_t n = 0;
  for (; text[n] != '\0' && n + 1 < sizeof r.last_failure; ++n) r.last_failure[n] = text[n];
  r.last_failure[n] = '\0';
  r.last_failure_busy.store(false, std::memory_order_release);
}

void copy_failure(detail::RegionImpl& r, char* out, std::size_t cap) noexcept {
  out[0] = '\0';
  if (cap == 0 || r.last_failure_busy.exchange(true, std::memory_order_acquire)) return;
  std::size_t n = 0;
  for (; r.last_failure[n] != '\0' && n + 1 < cap; ++n) out[n] = r.last_failure[n];
  out[n] = '\0';
  r.last_failure_busy.store(false, std::memory_order_release);
}

}  // namespace faultline::region

namespace faultline::region::uffd {

namespace {

void record_failure(detail::RegionImpl& r, std::uintptr_t page_addr, int err, const char* reason) noexcept {
  char text[sizeof r.last_failure];
  core::Formatter f(text, sizeof text);
  f.put(r.policy == Policy::pager ? "pager" : "provider").put(" failed on page ")
      .udec((page_addr - r.base) / core::page_size()).put(": ").put(os::errno_name(err)).put(" (errno ").dec(err)
      .put(')');
  if (reason != nullptr) f.put(": ").put(reason);
  f.c_str();
  set_failure(r, text);
}

// A read-only anonymous mapping never written: every page reads as zero, and costs no memory.
constinit std::atomic<void*> g_zeros{nullptr};
constexpr std::size_t kZeroBytes = std::size_t{512} << 12;

const void* zero_source(std::size_t len) noexcept {
  void* z = g_zeros.load(std::memory_order_acquire);
  if (z == nullptr) {
    const long m = os::raw_mmap(nullptr, kZeroBytes, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (os::is_err(m)) return nullptr;
    void* expected = nullptr;
    if (!g_zeros.compare_exchange_strong(expected, reinterpret_cast<void*>(m))) {
      os::raw_munmap(reinterpret_cast<void*>(m), kZeroBytes);
    }
    z = g_zeros.load(std::memory_order_acquire);
  }
  return len <= kZeroBytes ? z : nullptr;
}

}  // namespace

void poison_with(detail::RegionImpl& r, std::uintptr_t page_addr, int err, const char* reason) noexcept {
  const std::size_t page = core::page_size();
  record_failure(r, page_addr, err, reason);
  if (os::is_err(os::uffd_poison(r.uffd, page_addr, page))) os::uffd_wake(r.uffd, page_addr, page);
}

namespace {

bool is_filled(const detail::RegionImpl& r, std::size_t i) noexcept {
  return r.filled != nullptr && (r.filled[i / 64].load(std::memory_order_acquire) >> (i % 64)) & 1;
}

void mark_filled(detail::RegionImpl& r, std::uintptr_t from, std::size_t len) noexcept {
  if (r.filled == nullptr) return;
  const std::size_t page = core::page_size();
  for (std::uintptr_t a = from; a < from + len; a += page) {
    const std::size_t i = (a - r.base) / page;
    r.filled[i / 64].fetch_or(std::uint64_t{1} << (i % 64), std::memory_order_acq_rel);
  }
}

}  // namespace

int fill(detail::RegionImpl& r, std::uintptr_t page_addr, Access access, std::uintptr_t pc, long tid, void* bounce,
         std::size_t bounce_size, std::size_t* filled) noexcept {
  if (filled != nullptr) *filled = 0;
  const std::size_t page = core::page_size();
  // Another message for a page already filled (two threads faulted on it): wake, do not fill twice.
  if (is_filled(r, (page_addr - r.base) / page)) {
    os::uffd_wake(r.uffd, page_addr, page);
    return 0;
  }
  std::size_t window = r.ra_window.load(std::memory_order_relaxed);
  if (page_addr == r.ra_next.load(std::memory_order_relaxed)) {
    window = window * 2 > r.readahead_max ? r.readahead_max : window * 2;
  } else {
    window = window / 2 > 0 ? window / 2 : 1;
  }
  std::size_t len = window * page;
  if (len > r.end - page_addr) len = r.end - page_addr;
  // Stop the window at the first page already filled (COPY would stop there anyway, after the fill).
  for (std::size_t k = page; k < len; k += page) {
    if (is_filled(r, (page_addr + k - r.base) / page)) {
      len = k;
      break;
    }
  }
  if (r.policy != Policy::zero_fill && len > bounce_size) len = bounce_size - bounce_size % page;
  if (len == 0) len = page;
  r.ra_window.store(static_cast<std::uint32_t>(window), std::memory_order_relaxed);
  r.ra_next.store(page_addr + len, std::memory_order_relaxed);

  std::size_t done = 0;
  long rc;
  if (r.policy == Policy::zero_fill && access != Access::write) {
    rc = os::uffd_zeropage(r.uffd, page_addr, len, &done);  // reads: the shared zero page, no memory
  } else if (r.policy == Policy::zero_fill) {
    // Writes: ZEROPAGE would map the read-only zero page and every write would fault again to copy it;
    // copy zeros into private pages at once (from a mapping that was never written: all zero pages).
    const void* zeros = zero_source(len);
    rc = zeros != nullptr ? os::uffd_copy(r.uffd, page_addr, zeros, len, &done)
                          : os::uffd_zeropage(r.uffd, page_addr, len, &done);
  } else {
    FillRequest req{RegionInfo{r.name, r.base, r.end - r.base, r.policy, r.perms},
                    page_addr - r.base, len, access, pc, tid, static_cast<std::byte*>(bounce)};
    FillStatus st = r.fill(req, r.fill_data);
    if (st.error != 0) {
      const int err = st.error > 0 ? st.error : EIO;
      poison_with(r, page_addr, err, st.reason);
      return err;
    }
    rc = os::uffd_copy(r.uffd, page_addr, bounce, len, &done, true, r.writeback != nullptr);
  }
  if (!os::is_err(rc)) done = len;
  mark_filled(r, page_addr, done);
  if (filled != nullptr) *filled = done / page;
  // Nothing filled (the page exists already, or the mm is changing: -EAGAIN): wake the waiters, who
  // fault again if they still need to.
  if (os::is_err(rc) && done == 0) os::uffd_wake(r.uffd, page_addr, page);
  return 0;
}

}  // namespace faultline::region::uffd
