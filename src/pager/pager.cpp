// pager/pager.cpp: the pager's threads (ordinary code: they have the regions serve their requests, which
// runs the stores' fills), detached requests and their watchdog, and the public Pager. Not signal path.
#include <pthread.h>

#include <climits>
#include <cstdio>
#include <system_error>

#include "core/guard.hpp"
#include "core/page.hpp"
#include "os/linux/syscall.hpp"
#include "os/linux/thread_start.hpp"
#include "pager/pager.hpp"

namespace faultline {

namespace {

using detail::PagerImpl;
using detail::PagerSlot;
using detail::RegionImpl;

void serve_loop(PagerImpl* p, unsigned index) {
  pager::set_serving(p);
  p->tids[index].store(static_cast<long>(os::raw_gettid()), std::memory_order_release);
  for (;;) {
    const std::uint32_t seen = p->seq.load(std::memory_order_acquire);
    if (p->stop.load(std::memory_order_acquire)) break;
    bool found = false;
    for (PagerSlot& slot : p->slots) {
      std::uint32_t expected = pager::kSlotPending;
      if (slot.state.load(std::memory_order_relaxed) != expected) continue;  // (abandoned ones are skipped)
      if (!slot.state.compare_exchange_strong(expected, pager::kSlotTaken, std::memory_order_acq_rel)) continue;
      found = true;
      try {
        slot.region->serve(*p, slot);
      } catch (...) {  // serve() catches the store's exceptions itself; never let one end the thread
        pager::complete(*p, slot, FillStatus{EIO, "the pager's fill threw an exception"});
      }
    }
    if (!found) os::raw_futex_wait(os::futex_word(p->seq), seen);
  }
  pager::set_serving(nullptr);
}

}  // namespace

namespace pager {

void post_detached(RegionImpl& r, const FillRequest& req) {
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
  r.inflight.fetch_add(1, std::memory_order_acq_rel);  // the request's pin; complete() drops it
  slot->region = &r;
  slot->detached.store(true, std::memory_order_relaxed);
  slot->first_page = req.offset / core::page_size();
  slot->count = 0;
  slot->req = req;
  slot->deadline_ns.store(now_ns() + static_cast<std::int64_t>(r.fill_timeout_ms) * 1'000'000, std::memory_order_relaxed);
  slot->state.store(kSlotPending, std::memory_order_release);
  p.requests.fetch_add(1, std::memory_order_relaxed);
  p.seq.fetch_add(1, std::memory_order_release);
  os::raw_futex_wake(os::futex_word(p.seq), 1);
}

void expire_detached(PagerImpl& p, std::int64_t now, void (*expired)(RegionImpl& r, const FillRequest& req)) {
  for (PagerSlot& slot : p.slots) {
    std::uint32_t st = slot.state.load(std::memory_order_acquire);
    if (st != kSlotPending && st != kSlotTaken) continue;
    if (!slot.detached.load(std::memory_order_relaxed) || slot.deadline_ns.load(std::memory_order_relaxed) > now) continue;
    if (!slot.state.compare_exchange_strong(st, kSlotAbandoned, std::memory_order_acq_rel)) continue;
    RegionImpl& r = *slot.region;  // alive: the request's pin
    expired(r, slot.req);
    p.abandoned.fetch_add(1, std::memory_order_relaxed);
    if (st == kSlotPending) {  // no pager thread has it: release it here
      r.inflight.fetch_sub(1, std::memory_order_acq_rel);
      slot.state.store(kSlotFree, std::memory_order_release);
      p.free_seq.fetch_add(1, std::memory_order_release);
      os::raw_futex_wake(os::futex_word(p.free_seq), 1);
    }  // else the pager thread frees it when it finishes (its copy then meets the failed page)
  }
}

}  // namespace pager

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
  return core::guarded([&]() -> Result<Pager> {
    if (opts.threads == 0 || opts.threads > 64) {
      return Error(Errc::invalid_argument, "Pager '" + opts.name + "': threads must be 1..64, not " +
                                               std::to_string(opts.threads));
    }
    if (os::inject::point(fault_injection::Op::alloc) != 0) {
      return Error(Errc::no_space, "Pager '" + opts.name + "': out of memory");
    }
    auto impl = std::make_shared<PagerImpl>();
    impl->name = opts.name;
    impl->threads.reserve(opts.threads);
    for (unsigned i = 0; i < opts.threads; ++i) {
      PagerImpl* p = impl.get();
      auto t = os::start_thread("pager thread", [p, i] { serve_loop(p, i); });
      if (!t) {  // the threads started so far stop with impl (its destructor joins them)
        return Error(t.error().code(), "Pager '" + opts.name + "': " + t.error().message());
      }
      impl->threads.push_back(std::move(t.value()));
      char tname[16];
      std::snprintf(tname, sizeof tname, "%s", opts.name.c_str());
      pthread_setname_np(impl->threads.back().native_handle(), tname);
    }
    Pager p;
    p.impl_ = std::move(impl);
    return p;
  });
}

PagerStats Pager::stats() const noexcept {
  if (impl_ == nullptr) return {};
  return PagerStats{impl_->requests.load(std::memory_order_relaxed), impl_->failed.load(std::memory_order_relaxed),
                    impl_->abandoned.load(std::memory_order_relaxed)};
}

}  // namespace faultline
