// region/fill.cpp: resolving faults in provider and pager regions (signal path).
//
// See region/fill.hpp for the page states and the pager's request slots. Everything here runs in the
// faulting thread's signal handler (or in a pager thread, which uses finish_fill): raw system calls,
// futexes and atomics only.
#include <sys/mman.h>

#include <climits>


#include "core/format.hpp"
#include "core/page.hpp"
#include "os/linux/errnames.hpp"
#include "os/linux/syscall.hpp"
#include "os/linux/uapi.hpp"
#include "region/fill.hpp"
#include "region/table.hpp"
#include "trap/dispatcher.hpp"

namespace faultline::region {

namespace {

using detail::PagerImpl;
using detail::PagerSlot;
using detail::RegionImpl;

__attribute__((tls_model("initial-exec"))) constinit thread_local const PagerImpl* t_serving = nullptr;

std::int64_t now_ns() noexcept {
  struct timespec ts{};
  os::raw_clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Sleeps while *w == expected, until `deadline`. Returns false once the deadline has passed.
bool wait_until(std::atomic<std::uint32_t>& w, std::uint32_t expected, std::int64_t deadline) noexcept {
  const std::int64_t left = deadline - now_ns();
  if (left <= 0) return false;
  struct timespec ts{static_cast<time_t>(left / 1'000'000'000), static_cast<long>(left % 1'000'000'000)};
  os::raw_futex_wait(os::futex_word(w), expected, &ts);  // EAGAIN, EINTR, ETIMEDOUT: the caller re-reads
  return true;
}

// Sleeps like wait_until, outside the trap epoch (a fill may take long; writers must not wait for it).
// The caller holds a Pin on the region.
bool wait_outside_epoch(std::atomic<std::uint32_t>& w, std::uint32_t expected, std::int64_t deadline) noexcept {
  trap::suspend_epoch();
  const bool in_time = wait_until(w, expected, deadline);
  trap::resume_epoch();
  return in_time;
}

// Keeps a region alive while its faulting thread sleeps outside the epoch (see RegionImpl::inflight).
struct Pin {
  RegionImpl& r;
  explicit Pin(RegionImpl& region) noexcept : r(region) { r.inflight.fetch_add(1, std::memory_order_acq_rel); }
  ~Pin() { r.inflight.fetch_sub(1, std::memory_order_acq_rel); }
  Pin(const Pin&) = delete;
  Pin& operator=(const Pin&) = delete;
};

void set_page(RegionImpl& r, std::size_t i, std::uint32_t state) noexcept {
  if (r.pstate[i].exchange(state, std::memory_order_acq_rel) & kPageWaiters) {
    os::raw_futex_wake(os::futex_word(r.pstate[i]), INT_MAX);
  }
}

// "pager for region 'x' failed on pages 3-4: EIO (errno 5): reason"
void fail(FaultContext& ctx, const RegionImpl& r, std::size_t first, std::size_t count, FillStatus st) noexcept {
  char cause[200];
  core::Formatter f(cause, sizeof cause);
  f.put(r.policy == Policy::pager ? "pager" : "provider").put(" for region '").put(r.name).put("' failed on page ")
      .udec(first);
  if (count > 1) f.put('-').udec(first + count - 1);
  f.put(": ").put(os::errno_name(st.error)).put(" (errno ").dec(st.error).put(')');
  if (st.reason != nullptr) f.put(": ").put(st.reason);
  f.c_str();
  trap::fail_with_sigbus(ctx, cause);
}

// Posts a request to the region's pager and waits for the answer.
FillStatus ask_pager(RegionImpl& r, const FillRequest& req, std::size_t first, std::size_t count,
                     std::int64_t deadline) noexcept {
  PagerImpl& p = *r.pager;
  if (t_serving == &p) {
    finish_fill(r, first, count, FillStatus{EDEADLK, nullptr});
    return FillStatus{EDEADLK, "a thread of this region's pager touched an unfilled page of it"};
  }
  // Claim a free slot (there are more slots than threads that can wait at once in practice; when full,
  // wait for one to be freed).
  PagerSlot* slot = nullptr;
  const unsigned start = static_cast<unsigned>(os::raw_gettid()) % PagerImpl::kSlots;
  while (slot == nullptr) {
    const std::uint32_t seen = p.free_seq.load(std::memory_order_acquire);
    for (unsigned k = 0; k < PagerImpl::kSlots && slot == nullptr; ++k) {
      PagerSlot& s = p.slots[(start + k) % PagerImpl::kSlots];
      std::uint32_t expected = kSlotFree;
      if (s.state.compare_exchange_strong(expected, kSlotClaimed, std::memory_order_acq_rel)) slot = &s;
    }
    if (slot == nullptr && !wait_outside_epoch(p.free_seq, seen, deadline)) {
      finish_fill(r, first, count, FillStatus{ETIMEDOUT, nullptr});
      return FillStatus{ETIMEDOUT, "every request slot of the pager stayed busy for fill_timeout"};
    }
  }
  r.inflight.fetch_add(1, std::memory_order_acq_rel);
  slot->region = &r;
  slot->uffd = false;
  slot->first_page = first;
  slot->count = count;
  slot->req = req;
  slot->status = FillStatus{};
  slot->state.store(kSlotPending, std::memory_order_release);
  p.requests.fetch_add(1, std::memory_order_relaxed);
  p.seq.fetch_add(1, std::memory_order_release);
  os::raw_futex_wake(os::futex_word(p.seq), 1);

  for (;;) {
    std::uint32_t st = slot->state.load(std::memory_order_acquire);
    if (st == kSlotDone) {
      FillStatus answer = slot->status;
      slot->state.store(kSlotFree, std::memory_order_release);
      p.free_seq.fetch_add(1, std::memory_order_release);
      os::raw_futex_wake(os::futex_word(p.free_seq), 1);
      return answer;
    }
    if (wait_outside_epoch(slot->state, st, deadline)) continue;
    // Out of time: abandon the request.
    if (!slot->state.compare_exchange_strong(st, kSlotAbandoned, std::memory_order_acq_rel)) continue;
    p.abandoned.fetch_add(1, std::memory_order_relaxed);
    if (st == kSlotPending) {  // no pager thread took it: the pages and the slot are ours to release
      finish_fill(r, first, count, FillStatus{ETIMEDOUT, nullptr});
      r.inflight.fetch_sub(1, std::memory_order_acq_rel);
      slot->state.store(kSlotFree, std::memory_order_release);
      p.free_seq.fetch_add(1, std::memory_order_release);
      os::raw_futex_wake(os::futex_word(p.free_seq), 1);
    }  // else the pager thread finishes the pages and frees the slot
    return FillStatus{ETIMEDOUT, "the pager did not answer within fill_timeout"};
  }
}

// Fills the run that starts at page `first` (already claimed) and extends it over following empty pages.
Disposition fill_run(FaultContext& ctx, RegionImpl& r, std::size_t first, std::int64_t deadline) noexcept {
  const std::size_t page = core::page_size();
  const std::size_t pages = (r.end - r.base) / page;
  std::size_t count = 1;
  while (count < r.fault_around && first + count < pages) {
    std::uint32_t expected = kPageEmpty;
    if (!r.pstate[first + count].compare_exchange_strong(expected, kPageFilling, std::memory_order_acq_rel)) break;
    ++count;
  }
  FillRequest req{RegionInfo{r.name, r.base, r.end - r.base, r.policy, r.perms},
                  first * page,
                  count * page,
                  ctx.access(),
                  ctx.pc(),
                  os::raw_gettid(),
                  reinterpret_cast<std::byte*>(r.alias + first * page)};
  // Map the run's memory in both views with one call each instead of a kernel fault per page: the
  // alias before the fill writes it, the region's view after finish_fill opens it. Failure is harmless
  // (the kernel then faults the pages in one by one).
  os::raw_madvise(req.dest, req.length, MADV_POPULATE_WRITE);
  FillStatus st;
  if (r.policy == Policy::provider) {
    st = finish_fill(r, first, count, r.fill(req, r.fill_data));
  } else {
    st = ask_pager(r, req, first, count, deadline);
  }
  if (st.error != 0) {
    fail(ctx, r, first, count, st);
  } else {
    os::raw_madvise(reinterpret_cast<void*>(r.base + first * page), count * page,
                    (r.perms & perm_write) ? MADV_POPULATE_WRITE : MADV_POPULATE_READ);
  }
  return Disposition::resolved;
}

}  // namespace

FillStatus finish_fill(RegionImpl& r, std::size_t first, std::size_t count, FillStatus status) noexcept {
  const std::size_t page = core::page_size();
  if (status.error == 0) {
    long rc = os::raw_mprotect(reinterpret_cast<void*>(r.base + first * page), count * page, r.prot);
    if (os::is_err(rc)) status = FillStatus{static_cast<int>(-rc), "mprotect of the filled pages failed"};
  } else if (status.error < 0) {
    status.error = EIO;  // a fill function that returned a negative value
  }
  const std::uint32_t next = status.error == 0 ? kPageReady : kPageEmpty;
  for (std::size_t i = first; i < first + count; ++i) set_page(r, i, next);
  return status;
}

Disposition resolve_filled(FaultContext& ctx, RegionImpl& r, std::uintptr_t page_addr) noexcept {
  const std::size_t page = core::page_size();
  const std::size_t i = (page_addr - r.base) / page;
  const std::int64_t deadline = now_ns() + static_cast<std::int64_t>(r.fill_timeout_ms) * 1'000'000;
  const Pin pin(r);
  for (;;) {
    std::uint32_t s = r.pstate[i].load(std::memory_order_acquire);
    switch (s & kPageStateMask) {
      case kPageReady:
        // Filled, yet it faulted: we raced with the filler's mprotect, or protect() lowered the page's
        // protection since. Either way the contents are there: restore the region's protection.
        if (os::is_err(os::raw_mprotect(reinterpret_cast<void*>(page_addr), page, r.prot))) {
          return Disposition::declined;
        }
        return Disposition::resolved;
      case kPageEmpty:
        if (r.pstate[i].compare_exchange_strong(s, kPageFilling, std::memory_order_acq_rel)) {
          return fill_run(ctx, r, i, deadline);
        }
        continue;
      default:  // filling: another thread (or its pager) is at it; sleep until it finishes
        if (!(s & kPageWaiters)) {
          if (!r.pstate[i].compare_exchange_strong(s, s | kPageWaiters, std::memory_order_acq_rel)) continue;
          s |= kPageWaiters;
        }
        if (!wait_outside_epoch(r.pstate[i], s, deadline)) {
          fail(ctx, r, i, 1,
               FillStatus{ETIMEDOUT, "the fill of this page by another thread did not finish within fill_timeout"});
          return Disposition::resolved;
        }
        continue;
    }
  }
}

void set_serving(const PagerImpl* pager) noexcept { t_serving = pager; }

}  // namespace faultline::region
