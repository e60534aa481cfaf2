// backend/signals/signals.hpp: the signal backend: every policy with mprotect and SIGSEGV.
//
// A region's pages start protected (PROT_NONE; track_dirty: read-only) and each fault is resolved in the
// faulting thread's handler (signals_sig.cpp):
//   zero_fill    mprotect + MADV_POPULATE a run of fault_around pages;
//   track_dirty  unprotect the page, then set its dirty bit (collect_dirty takes the bits, then
//                re-protects, so a page is never left writable without its bit);
//   provider,    the region is one memfd mapped twice: its own view (PROT_NONE until filled) and a
//   pager        private read-write alias the store fills through. Each page has a fill state
//                (empty / filling / ready, plus a waiters bit for threads sleeping on its futex word): the
//                faulting thread claims the page and up to fault_around - 1 following empty pages, has
//                them filled (by the store in its own handler, or by a pager thread while it waits),
//                mprotects the run, marks it ready and wakes the waiters. A failed fill sets the pages
//                back to empty and the access ends in SIGBUS with the cause;
//   barrier      the region's function decides;
//   guard        declined.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "region/impl.hpp"

namespace faultline::backend::signals {

// zero_fill and track_dirty: after this many faults resolved page run by page run, a region resolves each
// fault over an aligned coarse window instead (SignalRegion::coarse_window: a power of two, at least 2 MiB
// and at least 1/4096 of the region), so that one region never splits into more than about
// 2 * (kCoarseAfter + 4096) mappings, and sparse first touches of a huge region cannot take the
// process to vm.max_map_count (past which even malloc fails). For zero_fill a wider window only makes
// zero pages accessible early; for track_dirty every page of it is marked dirty (reported once too often,
// never missed).
constexpr std::uint32_t kCoarseAfter = 4096;

// Page fill states (provider, pager).
constexpr std::uint32_t kPageEmpty = 0, kPageFilling = 1, kPageReady = 2, kPageStateMask = 3;
constexpr std::uint32_t kPageWaiters = 4;

class SignalRegion final : public detail::RegionImpl {
 public:
  SignalRegion(const RegionOptions& o, std::uintptr_t base, std::size_t size, bool owned, std::uintptr_t alias);
  ~SignalRegion() override;

  Backend backend() const noexcept override { return Backend::signals; }
  Result<void> attach() override;
  void detach() noexcept override;
  void unmap() noexcept override;
  bool memory_is_ours() const noexcept override;
  Disposition on_fault(FaultContext& ctx) noexcept override;  // signals_sig.cpp
  Result<void> collect_dirty(std::vector<std::size_t>& pages, ProtectBatch* defer) override;
  Result<void> protect(std::size_t first, std::size_t count, unsigned perms) override;
  Result<void> discard(std::size_t first, std::size_t count) override;
  Result<std::size_t> write_back(std::size_t first, std::size_t count) override;
  void serve(detail::PagerImpl& pager, detail::PagerSlot& slot) override;

  // The pages a fault at page_addr opens (zero_fill, track_dirty): [*from, *to). Signal path.
  void window_for(std::uintptr_t page_addr, std::size_t run, std::uintptr_t* from, std::uintptr_t* to) noexcept;

  // Ends a fill of pages [first, first + count): on success makes them visible (mprotect) and ready, on
  // failure empty again; wakes waiters. Returns the status, turned into a failure if mprotect fails.
  // Async-signal-safe (signals_sig.cpp).
  FillStatus finish_fill(std::size_t first, std::size_t count, FillStatus status) noexcept;

  detail::PageBits dirty;  // track_dirty: set by the fault handler after it unprotects the page
  std::atomic<std::uint32_t> resolutions{0};  // zero_fill, track_dirty: faults resolved so far
  std::uintptr_t coarse_window = 0;           // the coarse window (see kCoarseAfter)
  std::uintptr_t alias = 0;  // provider, pager: the private read-write view the store fills
  std::size_t huge = 0;      // RegionOptions::huge_pages: a fault fills its whole aligned block of this size
  std::unique_ptr<std::atomic<std::uint32_t>[]> pstate;  // provider, pager: a fill state per page

  // Adopted memory: the protection of each mapping of the range before the region took it, given back
  // when the region ends (or when adopting fails half-way).
  struct Original {
    std::uintptr_t start, end;
    int prot;
    std::uint64_t inode;  // what the mapping was (0: anonymous), for memory_is_ours()
  };
  std::vector<Original> original;
  std::uint64_t memfd_inode = 0;  // provider, pager: the memfd both views map
  bool monitored = false;         // owned anonymous memory watched by the unmap monitor (backend/monitor.hpp)

 private:
  Disposition resolve_filled(FaultContext& ctx, std::uintptr_t page_addr) noexcept;
  Disposition fill_run(FaultContext& ctx, std::size_t first, std::int64_t deadline) noexcept;
  void set_page(std::size_t i, std::uint32_t state) noexcept;
};

// Maps `size` bytes for a new region (reserve_region): provider and pager regions as a memfd mapped
// twice, the others as private anonymous memory, PROT_NONE. Nothing stays mapped on failure.
Result<std::unique_ptr<detail::RegionImpl>> create(std::size_t size, const RegionOptions& o);
// A region over memory the caller mapped (adopt_region). Changes nothing yet (attach() does).
std::unique_ptr<detail::RegionImpl> adopt(void* addr, std::size_t size, const RegionOptions& o);

}  // namespace faultline::backend::signals
