// backend/signals/signals_sig.cpp: the signal backend's fault handling (signal path). See signals.hpp.
// Raw system calls, futexes and atomics only.
#include <sys/mman.h>

#include <cerrno>
#include <climits>

#include "backend/signals/signals.hpp"
#include "core/format.hpp"
#include "core/page.hpp"
#include "os/linux/errnames.hpp"
#include "os/linux/syscall.hpp"
#include "pager/pager.hpp"
#include "region/table.hpp"
#include "trap/dispatcher.hpp"
#include "linux_uapi.hpp"

namespace faultline::backend::signals {

namespace {

Disposition zero_fill(const detail::RegionImpl& r, std::uintptr_t page_addr) noexcept {
  const std::size_t page = core::page_size();
  std::uintptr_t end = page_addr + r.fault_around * page;
  if (end > r.end || end < page_addr) end = r.end;
  void* p = reinterpret_cast<void*>(page_addr);
  const std::size_t len = end - page_addr;
  if (os::is_err(os::raw_mprotect(p, len, r.prot))) return Disposition::declined;
  // Populate the run now: one system call instead of a demand-zero fault per page. Failure is harmless
  // (the kernel then faults pages in on access).
  os::raw_madvise(p, len, (r.perms & perm_write) ? MADV_POPULATE_WRITE : MADV_POPULATE_READ);
  return Disposition::resolved;
}

// Ends the access in SIGBUS with "pager for region 'x' failed on pages 3-4: EIO (errno 5): reason".
void fail(FaultContext& ctx, const detail::RegionImpl& r, std::size_t first, std::size_t count, FillStatus st) noexcept {
  char cause[200];
  r.fill_failure_text(cause, sizeof cause, first, count, st.error, st.reason);
  trap::fail_with_sigbus(ctx, cause);
}

}  // namespace

void SignalRegion::set_page(std::size_t i, std::uint32_t state) noexcept {
  if (pstate[i].exchange(state, std::memory_order_acq_rel) & kPageWaiters) {
    os::raw_futex_wake(os::futex_word(pstate[i]), INT_MAX);
  }
}

FillStatus SignalRegion::finish_fill(std::size_t first, std::size_t count, FillStatus status) noexcept {
  const std::size_t page = core::page_size();
  if (status.error == 0) {
    const long rc = os::raw_mprotect(reinterpret_cast<void*>(base + first * page), count * page, prot);
    if (os::is_err(rc)) status = FillStatus{static_cast<int>(-rc), "mprotect of the filled pages failed"};
  } else if (status.error < 0) {
    status.error = EIO;  // a store that returned a negative value
  }
  const std::uint32_t next = status.error == 0 ? kPageReady : kPageEmpty;
  for (std::size_t i = first; i < first + count; ++i) set_page(i, next);
  return status;
}

// Fills the run that starts at page `first` (already claimed) and extends it over following empty pages.
Disposition SignalRegion::fill_run(FaultContext& ctx, std::size_t first, std::int64_t deadline) noexcept {
  const std::size_t page = core::page_size();
  const std::size_t n = pages();
  std::size_t count = 1;
  while (count < fault_around && first + count < n) {
    std::uint32_t expected = kPageEmpty;
    if (!pstate[first + count].compare_exchange_strong(expected, kPageFilling, std::memory_order_acq_rel)) break;
    ++count;
  }
  const FillRequest req{info(), first * page, count * page, ctx.access(), ctx.pc(), os::raw_gettid(),
                        reinterpret_cast<std::byte*>(alias + first * page)};
  // Map the run's memory in both views with one call each instead of a kernel fault per page: the alias
  // before the fill writes it, the region's view after finish_fill opens it. Failure is harmless (the
  // kernel then faults the pages in one by one).
  os::raw_madvise(req.dest, req.length, MADV_POPULATE_WRITE);
  FillStatus st;
  if (policy == Policy::provider) {
    st = finish_fill(first, count, store->fill(req));
  } else {
    bool caller_releases = false;
    st = pager::ask(*this, req, first, count, deadline, &caller_releases);
    if (caller_releases) finish_fill(first, count, st.error != 0 ? st : FillStatus{EIO, nullptr});
  }
  if (st.error != 0) {
    fail(ctx, *this, first, count, st);
  } else {
    os::raw_madvise(reinterpret_cast<void*>(base + first * page), count * page,
                    (perms & perm_write) ? MADV_POPULATE_WRITE : MADV_POPULATE_READ);
  }
  return Disposition::resolved;
}

Disposition SignalRegion::resolve_filled(FaultContext& ctx, std::uintptr_t page_addr) noexcept {
  const std::size_t page = core::page_size();
  const std::size_t i = (page_addr - base) / page;
  const std::int64_t deadline = os::monotonic_ns() + static_cast<std::int64_t>(fill_timeout_ms) * 1'000'000;
  const detail::Pin pin(*this);
  for (;;) {
    std::uint32_t s = pstate[i].load(std::memory_order_acquire);
    switch (s & kPageStateMask) {
      case kPageReady:
        // Filled, yet it faulted: we raced with the filler's mprotect, or protect() lowered the page's
        // protection since. Either way the contents are there: restore the region's protection.
        if (os::is_err(os::raw_mprotect(reinterpret_cast<void*>(page_addr), page, prot))) return Disposition::declined;
        return Disposition::resolved;
      case kPageEmpty:
        if (inherited.load(std::memory_order_relaxed)) {
          // A forked child shares this region's pages with the process that created it (one memfd):
          // only that process fills them, or the two would write the same page unbeknown to each other.
          fail(ctx, *this, i, 1,
               FillStatus{EPERM, "inherited across fork(): a provider or pager region's pages are shared with the "
                                 "process that created it, which alone fills them"});
          return Disposition::resolved;
        }
        if (pstate[i].compare_exchange_strong(s, kPageFilling, std::memory_order_acq_rel)) {
          return fill_run(ctx, i, deadline);
        }
        continue;
      default:  // filling: another thread (or its pager) is at it; sleep until it finishes
        if (inherited.load(std::memory_order_relaxed)) {  // ... in the parent, where the fill goes on
          fail(ctx, *this, i, 1, FillStatus{EPERM, "inherited across fork(): this page was being filled at the fork"});
          return Disposition::resolved;
        }
        if (!(s & kPageWaiters)) {
          if (!pstate[i].compare_exchange_strong(s, s | kPageWaiters, std::memory_order_acq_rel)) continue;
          s |= kPageWaiters;
        }
        if (!trap::wait_outside_epoch(pstate[i], s, deadline)) {
          fail(ctx, *this, i, 1,
               FillStatus{ETIMEDOUT, "the fill of this page by another thread did not finish within fill_timeout"});
          return Disposition::resolved;
        }
        continue;
    }
  }
}

Disposition SignalRegion::on_fault(FaultContext& ctx) noexcept {
  if (ctx.signal() != SIGSEGV) return Disposition::declined;  // a SIGBUS here is not ours to resolve
  if (policy == Policy::barrier) return barrier(ctx, info(), barrier_data);
  if (policy == Policy::guard || !permits(ctx.access())) return Disposition::declined;
  const std::uintptr_t page_addr = core::align_down(ctx.address(), core::page_size());
  switch (policy) {
    case Policy::zero_fill: return zero_fill(*this, page_addr);
    case Policy::provider:
    case Policy::pager: return resolve_filled(ctx, page_addr);
    case Policy::track_dirty:
      if (ctx.access() != Access::write) {
        // A read of a page protect() lowered below read: make it readable again, still write-protected.
        if (os::is_err(os::raw_mprotect(reinterpret_cast<void*>(page_addr), core::page_size(), prot & ~PROT_WRITE))) {
          return Disposition::declined;
        }
        return Disposition::resolved;
      }
      // Unprotect first, then mark: collect_dirty() takes the marks and only then re-protects, so a page
      // is never left writable without its mark (at worst it is reported dirty once too often).
      if (os::is_err(os::raw_mprotect(reinterpret_cast<void*>(page_addr), core::page_size(), prot))) {
        return Disposition::declined;
      }
      dirty.set((page_addr - base) / core::page_size());
      return Disposition::resolved;
    default: break;
  }
  return Disposition::declined;
}

}  // namespace faultline::backend::signals
