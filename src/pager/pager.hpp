// pager/pager.hpp: the pager's request slots, shared by faulting threads (signal path), faultline's
// userfaultfd handler thread and the pager threads.
//
// A pager's queue is a fixed array of request slots (no allocation in signal context). A requester
// claims a free slot, writes its request, publishes it (pending); a pager thread takes it (taken), has
// the region serve it (RegionImpl::serve: fill, complete the pages) and finishes it (complete()).
//   - With a waiter (the signal backend): the faulting thread sleeps on the slot's state until it is
//     done, then reads the answer and frees the slot. A waiter that stops waiting (fill_timeout) marks
//     the slot abandoned: if no pager thread had taken it, the waiter releases the pages itself;
//     otherwise the pager thread frees the slot when it finishes.
//   - Detached (userfaultfd: the handler thread posts and goes on): nobody waits on the slot; the pager
//     thread frees it. The handler thread's watchdog (expire_detached) abandons requests older than their
//     deadline and fails their pages, so that a silent pager never hangs a faulting thread.
// A posted request pins its region (RegionImpl::inflight); complete() drops the pin.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "faultline/pager.hpp"
#include "region/impl.hpp"

namespace faultline::pager {

enum : std::uint32_t { kSlotFree, kSlotClaimed, kSlotPending, kSlotTaken, kSlotDone, kSlotAbandoned };

}  // namespace faultline::pager

namespace faultline::detail {

struct PagerSlot {
  std::atomic<std::uint32_t> state{pager::kSlotFree};
  RegionImpl* region = nullptr;
  std::size_t first_page = 0, count = 0;
  FillRequest req{};
  FillStatus status{};
  // Read by the watchdog of every handler thread while another thread may be claiming the slot: atomics
  // (relaxed; the state's acquire/release orders the rest).
  std::atomic<bool> detached{false};          // nobody waits for the answer (see above)
  std::atomic<std::int64_t> deadline_ns{0};   // detached: when the watchdog abandons it
};

struct PagerImpl {
  static constexpr unsigned kSlots = 256;
  PagerSlot slots[kSlots];
  std::atomic<std::uint32_t> seq{0};       // bumped when a request is posted; pager threads sleep on it
  std::atomic<std::uint32_t> free_seq{0};  // bumped when a slot is freed; requesters sleep on it when full
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> requests{0}, failed{0}, abandoned{0};
  std::string name;
  std::vector<std::thread> threads;
  std::atomic<long> tids[64] = {};  // the threads' ids (a fault by one of them on its own region fails)

  PagerImpl() = default;
  PagerImpl(const PagerImpl&) = delete;
  PagerImpl& operator=(const PagerImpl&) = delete;
  ~PagerImpl();  // stops and joins the threads (pager.cpp)
};

}  // namespace faultline::detail

namespace faultline::pager {

// Signal path (request_sig.cpp). Posts `req` for pages [first, first + count) of `r` (already claimed
// by the caller) and waits for the answer until `deadline` (CLOCK_MONOTONIC ns), sleeping outside the
// trap epoch. *caller_releases is set when the pages are still the caller's to release (the request was
// never taken by a pager thread, or never posted); otherwise the pager thread has completed them.
FillStatus ask(detail::RegionImpl& r, const FillRequest& req, std::size_t first, std::size_t count,
               std::int64_t deadline, bool* caller_releases) noexcept;

// Not signal path (pager.cpp). Posts a detached request (see above) for `req` of `r`.
void post_detached(detail::RegionImpl& r, const FillRequest& req);

// The watchdog of detached requests: abandons every one older than its deadline, calling
// expired(region, request) for each (the region is pinned during the call).
void expire_detached(detail::PagerImpl& p, std::int64_t now_ns,
                     void (*expired)(detail::RegionImpl& r, const FillRequest& req));

// Called by RegionImpl::serve last: drops the request's pin on its region (which must not be touched
// afterwards) and answers the waiter or frees the slot. Async-signal-safe.
void complete(detail::PagerImpl& p, detail::PagerSlot& slot, FillStatus status) noexcept;

// True if `tid` is one of `p`'s threads. Async-signal-safe.
bool is_pager_thread(const detail::PagerImpl& p, long tid) noexcept;
// Marks the calling thread as serving `pager` (null: none). Its faults on that pager's regions fail with
// EDEADLK instead of waiting for itself. Async-signal-safe (request_sig.cpp).
void set_serving(const detail::PagerImpl* pager) noexcept;
bool serving(const detail::PagerImpl* pager) noexcept;

// CLOCK_MONOTONIC in nanoseconds. Async-signal-safe.
std::int64_t now_ns() noexcept;

}  // namespace faultline::pager
