// pager/request_sig.cpp: asking a pager for a fill and answering a request (signal path: a faulting
// thread asks from its fault handler; pager threads complete). Raw system calls, futexes and atomics only.
#include <cerrno>
#include <climits>

#include "os/linux/syscall.hpp"
#include "pager/pager.hpp"
#include "trap/dispatcher.hpp"

namespace faultline::pager {

namespace {

using detail::PagerImpl;
using detail::PagerSlot;
using detail::RegionImpl;

__attribute__((tls_model("initial-exec"))) constinit thread_local const PagerImpl* t_serving = nullptr;

void free_slot(PagerImpl& p, PagerSlot& slot) noexcept {
  slot.state.store(kSlotFree, std::memory_order_release);
  p.free_seq.fetch_add(1, std::memory_order_release);
  os::raw_futex_wake(os::futex_word(p.free_seq), 1);
}

}  // namespace

std::int64_t now_ns() noexcept { return os::monotonic_ns(); }

void set_serving(const PagerImpl* pager) noexcept { t_serving = pager; }
bool serving(const PagerImpl* pager) noexcept { return pager != nullptr && t_serving == pager; }

bool is_pager_thread(const PagerImpl& p, long tid) noexcept {
  for (const auto& t : p.tids) {
    if (t.load(std::memory_order_acquire) == tid) return true;
  }
  return false;
}

FillStatus ask(RegionImpl& r, const FillRequest& req, std::size_t first, std::size_t count, std::int64_t deadline,
               bool* caller_releases) noexcept {
  PagerImpl& p = *r.pager;
  *caller_releases = true;
  if (t_serving == &p) return FillStatus{EDEADLK, "a thread of this region's pager touched an unfilled page of it"};
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
    if (slot == nullptr && !trap::wait_outside_epoch(p.free_seq, seen, deadline)) {
      return FillStatus{ETIMEDOUT, "every request slot of the pager stayed busy for fill_timeout"};
    }
  }
  r.inflight.fetch_add(1, std::memory_order_acq_rel);  // the request's pin; complete() drops it
  slot->region = &r;
  slot->detached.store(false, std::memory_order_relaxed);
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
      *caller_releases = false;
      const FillStatus answer = slot->status;
      free_slot(p, *slot);
      return answer;
    }
    if (trap::wait_outside_epoch(slot->state, st, deadline)) continue;
    // Out of time: abandon the request.
    if (!slot->state.compare_exchange_strong(st, kSlotAbandoned, std::memory_order_acq_rel)) continue;
    p.abandoned.fetch_add(1, std::memory_order_relaxed);
    if (st == kSlotPending) {  // no pager thread took it: the pages and the slot are ours to release
      r.inflight.fetch_sub(1, std::memory_order_acq_rel);
      free_slot(p, *slot);
    } else {
      *caller_releases = false;  // the pager thread finishes the pages and frees the slot
    }
    return FillStatus{ETIMEDOUT, "the pager did not answer within fill_timeout"};
  }
}

void complete(PagerImpl& p, PagerSlot& slot, FillStatus status) noexcept {
  if (status.error != 0) p.failed.fetch_add(1, std::memory_order_relaxed);
  slot.region->inflight.fetch_sub(1, std::memory_order_acq_rel);  // the region is not touched after this
  if (slot.detached.load(std::memory_order_relaxed)) return free_slot(p, slot);
  slot.status = status;
  std::uint32_t expected = kSlotTaken;
  if (slot.state.compare_exchange_strong(expected, kSlotDone, std::memory_order_acq_rel)) {
    os::raw_futex_wake(os::futex_word(slot.state), 1);
  } else {  // abandoned by its faulting thread: nobody will read the answer
    free_slot(p, slot);
  }
}

}  // namespace faultline::pager
