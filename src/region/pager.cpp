// region/pager.cpp: the external pager's threads (ordinary code: they run the regions' fill functions).
//
// A pager thread sleeps on the pager's request sequence word, takes pending requests from the slot
// array, runs the region's fill function, completes the pages (region/fill.cpp) and answers. See
// region/fill.hpp for the slot protocol.
#include <pthread.h>

#include <climits>
#include <cstring>

#include "os/linux/syscall.hpp"
#include <vector>

#include "core/page.hpp"
#include "region/fill.hpp"
#include "region/table.hpp"
#include "region/uffd.hpp"

namespace faultline {

namespace {

using detail::PagerImpl;
using detail::PagerSlot;
using detail::RegionImpl;

void free_slot(PagerImpl& p, PagerSlot& slot) {
  slot.state.store(region::kSlotFree, std::memory_order_release);
  p.free_seq.fetch_add(1, std::memory_order_release);
  os::raw_futex_wake(os::futex_word(p.free_seq), 1);
}

// A userfaultfd region's request: fill a buffer of this thread's, copy it in (or poison the page).
void process_uffd(PagerImpl& p, PagerSlot& slot) {
  RegionImpl& r = *slot.region;
  thread_local std::vector<std::byte> buffer;
  if (buffer.size() < slot.req.length) buffer.resize(slot.req.length);
  slot.req.dest = buffer.data();
  int err = 0;
  try {
    std::size_t pages = 0;
    err = region::uffd::fill(r, r.base + slot.req.offset, slot.req.access, slot.req.pc, slot.req.tid, buffer.data(),
                             buffer.size(), &pages);
    if (pages != 0) region::uffd::note_filled(r, r.base + slot.req.offset, pages);
  } catch (...) {
    err = EIO;
  }
  if (err != 0) p.failed.fetch_add(1, std::memory_order_relaxed);
  r.inflight.fetch_sub(1, std::memory_order_acq_rel);
  free_slot(p, slot);
}

void process(PagerImpl& p, PagerSlot& slot) {
  if (slot.uffd) return process_uffd(p, slot);
  RegionImpl& r = *slot.region;
  FillStatus st;
  try {
    st = r.fill(slot.req, r.fill_data);
  } catch (...) {
    st = FillStatus{EIO, "the pager's fill function threw an exception"};
  }
  st = region::finish_fill(r, slot.first_page, slot.count, st);
  if (st.error != 0) p.failed.fetch_add(1, std::memory_order_relaxed);
  slot.status = st;
  r.inflight.fetch_sub(1, std::memory_order_acq_rel);  // the region is not touched after this
  std::uint32_t expected = region::kSlotTaken;
  if (slot.state.compare_exchange_strong(expected, region::kSlotDone, std::memory_order_acq_rel)) {
    os::raw_futex_wake(os::futex_word(slot.state), 1);
  } else {  // abandoned by its faulting thread: nobody will read the answer
    free_slot(p, slot);
  }
}

void serve(PagerImpl* p, unsigned index) {
  region::set_serving(p);
  p->tids[index].store(static_cast<long>(os::raw_gettid()), std::memory_order_release);
  for (;;) {
    const std::uint32_t seen = p->seq.load(std::memory_order_acquire);
    if (p->stop.load(std::memory_order_acquire)) break;
    bool found = false;
    for (PagerSlot& slot : p->slots) {
      std::uint32_t expected = region::kSlotPending;
      if (slot.state.load(std::memory_order_relaxed) != expected) continue;  // (abandoned ones are skipped)
      if (!slot.state.compare_exchange_strong(expected, region::kSlotTaken, std::memory_order_acq_rel)) continue;
      found = true;
      process(*p, slot);
    }
    if (!found) os::raw_futex_wait(os::futex_word(p->seq), seen);
  }
  region::set_serving(nullptr);
}

}  // namespace

namespace region {

void post_to_pager(RegionImpl& r, std::uintptr_t page_addr, Access access, std::uintptr_t pc, long tid) {
  PagerImpl& p = *r.pager;
  PagerSlot* slot = nullptr;
  while (slot == nullptr) {
    const std::uint32_t seen = p.free_seq.load(std::memory_order_acquire);
    for (PagerSlot& s : p.slots) {
      std::uint32_t expected = kSlotFree;
      if (s.state.compare_exchange_strong(expected, kSlotClaimed, std::memory_order_acq_rel)) {
        slot = &s;
        break;
      }
    }
    if (slot == nullptr) os::raw_futex_wait(os::futex_word(p.free_seq), seen);  // every slot busy: wait for one
  }
  // The read-ahead window is decided by the pager thread (uffd::fill); the request names the page.
  r.inflight.fetch_add(1, std::memory_order_acq_rel);
  slot->region = &r;
  slot->uffd = true;
  slot->req = FillRequest{RegionInfo{r.name, r.base, r.end - r.base, r.policy, r.perms},
                          page_addr - r.base, r.readahead_max * core::page_size(), access, pc, tid, nullptr};
  struct timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  slot->deadline_ns = static_cast<std::int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec +
                      static_cast<std::int64_t>(r.fill_timeout_ms) * 1'000'000;
  slot->state.store(kSlotPending, std::memory_order_release);
  p.requests.fetch_add(1, std::memory_order_relaxed);
  p.seq.fetch_add(1, std::memory_order_release);
  os::raw_futex_wake(os::futex_word(p.seq), 1);
}

void expire_uffd_requests(PagerImpl& p, std::int64_t now_ns) {
  for (PagerSlot& slot : p.slots) {
    std::uint32_t st = slot.state.load(std::memory_order_acquire);
    if (!slot.uffd || (st != kSlotPending && st != kSlotTaken) || slot.deadline_ns > now_ns) continue;
    if (!slot.state.compare_exchange_strong(st, kSlotAbandoned, std::memory_order_acq_rel)) continue;
    RegionImpl& r = *slot.region;  // alive: the request's pin (inflight)
    const std::uintptr_t page_addr = r.base + slot.req.offset;
    uffd::poison_with(r, page_addr, ETIMEDOUT, "the pager did not answer within fill_timeout");
    p.abandoned.fetch_add(1, std::memory_order_relaxed);
    if (st == kSlotPending) {  // no pager thread has it: release it here
      r.inflight.fetch_sub(1, std::memory_order_acq_rel);
      free_slot(p, slot);
    }  // else the pager thread frees it when it finishes (its copy then meets the poisoned page)
  }
}

bool is_pager_thread(const PagerImpl& p, long tid) noexcept {
  for (const auto& t : p.tids) {
    if (t.load(std::memory_order_acquire) == tid) return true;
  }
  return false;
}

}  // namespace region

namespace detail {

PagerImpl::~PagerImpl() {
  stop.store(true, std::memory_order_release);
  seq.fetch_add(1, std::memory_order_release);
  os::raw_futex_wake(os::futex_word(seq), INT_MAX);
  for (std::thread& t : threads) t.join();
}

const std::shared_ptr<PagerImpl>& impl_of(const Pager& p) noexcept { return p.impl_; }

}  // namespace detail

Result<Pager> Pager::start(const PagerOptions& opts) {
  if (opts.threads == 0 || opts.threads > 64) {
    return Error(Errc::invalid_argument, "Pager '" + opts.name + "': threads must be 1..64, not " +
                                             std::to_string(opts.threads));
  }
  auto impl = std::make_shared<PagerImpl>();
  impl->name = opts.name;
  try {
    for (unsigned i = 0; i < opts.threads; ++i) {
      impl->threads.emplace_back(serve, impl.get(), i);
      char tname[16];
      std::snprintf(tname, sizeof tname, "%s", opts.name.c_str());
      pthread_setname_np(impl->threads.back().native_handle(), tname);
    }
  } catch (const std::system_error& e) {
    return Error(Errc::system_error, "Pager '" + opts.name + "': cannot start a thread: " + e.what());
  }
  Pager p;
  p.impl_ = std::move(impl);
  return p;
}

PagerStats Pager::stats() const noexcept {
  if (impl_ == nullptr) return {};
  return PagerStats{impl_->requests.load(std::memory_order_relaxed), impl_->failed.load(std::memory_order_relaxed),
                    impl_->abandoned.load(std::memory_order_relaxed)};
}

}  // namespace faultline
