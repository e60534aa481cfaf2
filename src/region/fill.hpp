// region/fill.hpp: filling the pages of provider and pager regions; the pager's request queue.
//
// Each page of a filled region has a state word: empty, filling (a thread claimed it and fills it,
// possibly through a pager) or ready (filled and visible with the region's protection), plus a
// "waiters" bit set by threads that sleep on the word with a futex. A faulting thread claims the
// faulting page and up to fault_around - 1 following empty pages, fills them through the private alias,
// mprotects the run, marks it ready and wakes the waiters. A failed fill sets the pages back to empty.
//
// A pager's queue is a fixed array of request slots (no allocation in signal context). A faulting
// thread claims a free slot, writes its request, publishes it (pending) and sleeps on the slot's state;
// a pager thread takes it (taken), fills, completes the pages and answers (done). A faulting thread that
// stops waiting (fill_timeout) marks the slot abandoned: if the pager had not taken it yet the faulting
// thread releases the pages itself, otherwise the pager frees the slot when it finishes. Pager threads
// hold the trap epoch while they work on a request, so its region cannot be freed under them.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "faultline/region.hpp"

namespace faultline::region {

// Page fill states.
constexpr std::uint32_t kPageEmpty = 0, kPageFilling = 1, kPageReady = 2, kPageStateMask = 3;
constexpr std::uint32_t kPageWaiters = 4;

// Request slot states.
enum : std::uint32_t { kSlotFree, kSlotClaimed, kSlotPending, kSlotTaken, kSlotDone, kSlotAbandoned };

}  // namespace faultline::region

namespace faultline::detail {

struct PagerSlot {
  std::atomic<std::uint32_t> state{region::kSlotFree};
  RegionImpl* region = nullptr;
  std::size_t first_page = 0, count = 0;
  FillRequest req{};
  FillStatus status{};
  // userfaultfd regions: nobody waits on the slot; the pager thread fills a buffer of its own, copies
  // it in with UFFDIO_COPY (or poisons the page) and frees the slot itself.
  bool uffd = false;
  std::int64_t deadline_ns = 0;  // uffd: when the handler thread's watchdog poisons the page instead
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

namespace faultline::region {

// Signal path (fill.cpp). Resolves a fault at `page_addr` in a provider or pager region: returns
// resolved (the access can run again, or the fault was turned into SIGBUS) or declined.
Disposition resolve_filled(FaultContext& ctx, detail::RegionImpl& r, std::uintptr_t page_addr) noexcept;

// Ends a fill of pages [first, first + count): on success makes them visible (mprotect) and ready, on
// failure empty again; wakes waiters. Returns the status, turned into a failure if mprotect fails.
// Async-signal-safe.
FillStatus finish_fill(detail::RegionImpl& r, std::size_t first, std::size_t count, FillStatus status) noexcept;

// userfaultfd regions (handler thread, not signal path): hands the fault at `page_addr` to the region's
// pager without waiting for it.
void post_to_pager(detail::RegionImpl& r, std::uintptr_t page_addr, Access access, std::uintptr_t pc, long tid);

// The handler thread's watchdog for userfaultfd requests: poisons the page of every request older than
// its region's fill_timeout (the faulting thread then gets SIGBUS instead of waiting for ever).
void expire_uffd_requests(detail::PagerImpl& p, std::int64_t now_ns);

// True if `tid` is one of `p`'s threads.
bool is_pager_thread(const detail::PagerImpl& p, long tid) noexcept;

// Marks the calling thread as serving `pager` (null: none). Its faults on that pager's regions fail
// with EDEADLK instead of waiting for itself.
void set_serving(const detail::PagerImpl* pager) noexcept;

}  // namespace faultline::region
