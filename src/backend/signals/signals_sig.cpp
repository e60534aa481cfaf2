// backend/signals/signals_sig.cpp: the signal backend's fault handling (signal path). See signals.hpp.
// Raw system calls, futexes and atomics only.
#include <sys/mman.h>

#include <cerrno>
#include <climits>

#include "backend/signals/signals.hpp"
#include "core/format.hpp"
#include "core/page.hpp"
#include "os/linux/errnames.hpp"
#include "os/linux/maps.hpp"
#include "os/linux/syscall.hpp"
#include "pager/pager.hpp"
#include "region/table.hpp"
#include "trap/dispatcher.hpp"
#include "linux_uapi.hpp"

namespace faultline::backend::signals {

namespace {

// Ends a fault the region could not resolve because the kernel refused to change a protection: SIGBUS
// with the cause (for ENOMEM, the mapping count against vm.max_map_count and what to do about it).
Disposition fail_mprotect(FaultContext& ctx, const detail::RegionImpl& r, long rc) noexcept {
  char cause[384];
  core::Formatter f(cause, sizeof cause);
  f.put("region '").put(r.name).put("': mprotect failed: ");
  if (rc == -ENOMEM) {
    char limit[256];
    os::map_limit_text(limit, sizeof limit);
    f.put(limit);
  } else {
    f.put(os::errno_name(static_cast<int>(-rc)));
  }
  f.c_str();
  trap::fail_with_sigbus(ctx, cause);
  return Disposition::resolved;
}

// Opens [page_addr, page_addr + len) with `prot`. When the kernel refuses (ENOMEM: the split would take
// the process past vm.max_map_count), opens a larger aligned window around it instead, 2 MiB and then 16
// times larger each try: one change over a wider range merges with the neighbouring mappings rather than
// splitting them, so sparse first touches stop costing a mapping each. *wide gets the window used (the
// run itself when no widening was needed). Returns 0 or the last -errno.
long open_pages(const detail::RegionImpl& r, std::uintptr_t page_addr, std::size_t len, int prot, std::uintptr_t wide[2]) noexcept {
  wide[0] = page_addr;
  wide[1] = page_addr + len;
  long rc = os::raw_mprotect(reinterpret_cast<void*>(page_addr), len, prot);
  for (std::uintptr_t window = std::uintptr_t{2} << 20; rc == -ENOMEM; window *= 16) {
    std::uintptr_t a = core::align_down(page_addr, window);
    std::uintptr_t b = a + window;
    if (a < r.base) a = r.base;
    if (b > r.end || b < a) b = r.end;
    rc = os::raw_mprotect(reinterpret_cast<void*>(a), b - a, prot);
    if (rc == 0) {
      wide[0] = a;
      wide[1] = b;
    }
    if (a == r.base && b == r.end) break;
  }
  return rc;
}

}  // namespace

// The pages a fault opens: the run at page_addr, or, once the region has been resolved piecemeal
// kCoarseAfter times, the aligned coarse window around it (see signals.hpp: a region's mappings stay
// bounded, so sparse touches cannot take the process to vm.max_map_count).
void SignalRegion::window_for(std::uintptr_t page_addr, std::size_t run, std::uintptr_t* from, std::uintptr_t* to) noexcept {
  *from = page_addr;
  *to = page_addr + run;
  if (*to > end || *to < page_addr) *to = end;
  if (resolutions.fetch_add(1, std::memory_order_relaxed) < kCoarseAfter) return;
  std::uintptr_t a = core::align_down(page_addr, coarse_window);
  std::uintptr_t b = a + coarse_window;
  *from = a < base ? base : a;
  *to = b > end || b < a ? end : b;
}

namespace {

Disposition zero_fill(FaultContext& ctx, SignalRegion& r, std::uintptr_t page_addr) noexcept {
  const std::size_t page = core::page_size();
  const std::int64_t t0 = os::monotonic_ns();
  if (r.huge != 0) page_addr &= ~(r.huge - 1);  // the whole 2 MiB block, for one transparent huge page
  std::uintptr_t end = page_addr + (r.huge != 0 ? r.huge : r.fault_around * page);
  if (end > r.end || end < page_addr) end = r.end;
  void* p = reinterpret_cast<void*>(page_addr);
  const std::size_t len = end - page_addr;
  // A wider window than the run is harmless for zero_fill: its pages become accessible zeros, which is
  // what their first touch would give.
  std::uintptr_t from, to, wide[2];
  r.window_for(page_addr, len, &from, &to);
  if (const long rc = open_pages(r, from, to - from, r.prot, wide); rc != 0) return fail_mprotect(ctx, r, rc);
  // Populate the run now: one system call instead of a demand-zero fault per page. Failure is harmless
  // (the kernel then faults pages in on access).
  os::raw_madvise(p, len, (r.perms & perm_write) ? MADV_POPULATE_WRITE : MADV_POPULATE_READ);
  r.counters.note_fill(len / page, os::monotonic_ns() - t0);
  return Disposition::resolved;
}

// Ends the access in SIGBUS with "pager for region 'x' failed on pages 3-4: EIO (errno 5): reason".
void fail(FaultContext& ctx, const detail::RegionImpl& r, std::size_t first, std::size_t count, FillStatus st) noexcept {
  r.counters.note_failure();
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
    if (rc == -ENOMEM) {
      status = FillStatus{ENOMEM, "mprotect of the filled pages failed: the process is at vm.max_map_count (each "
                                  "filled run splits a mapping); use the userfaultfd backend, a larger fault_around, "
                                  "or raise vm.max_map_count"};
    } else if (os::is_err(rc)) {
      status = FillStatus{static_cast<int>(-rc), "mprotect of the filled pages failed"};
    }
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
  const std::int64_t t0 = os::monotonic_ns();
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
    counters.note_fill(count, os::monotonic_ns() - t0);
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
        if (const long rc = os::raw_mprotect(reinterpret_cast<void*>(page_addr), page, prot); os::is_err(rc)) {
          return fail_mprotect(ctx, *this, rc);
        }
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
    case Policy::zero_fill: return zero_fill(ctx, *this, page_addr);
    case Policy::provider:
    case Policy::pager: return resolve_filled(ctx, page_addr);
    case Policy::track_dirty: {
      std::uintptr_t wide[2];
      if (ctx.access() != Access::write) {
        // A read of a page protect() lowered below read: make it readable again, still write-protected.
        if (const long rc = open_pages(*this, page_addr, core::page_size(), prot & ~PROT_WRITE, wide); rc != 0) {
          return fail_mprotect(ctx, *this, rc);
        }
        return Disposition::resolved;
      }
      // Unprotect first, then mark: collect_dirty() takes the marks and only then re-protects, so a page
      // is never left writable without its mark (at worst it is reported dirty once too often). When the
      // window had to be widened (ENOMEM), every page of it is marked: a page left writable unmarked would
      // be a write never reported.
      std::uintptr_t from, to;
      window_for(page_addr, core::page_size(), &from, &to);
      if (const long rc = open_pages(*this, from, to - from, prot, wide); rc != 0) return fail_mprotect(ctx, *this, rc);
      for (std::uintptr_t a = wide[0]; a < wide[1]; a += core::page_size()) dirty.set((a - base) / core::page_size());
      return Disposition::resolved;
    }
    default: break;
  }
  return Disposition::declined;
}

}  // namespace faultline::backend::signals
