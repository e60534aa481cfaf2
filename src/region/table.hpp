// region/table.hpp: the region table shared by the signal-path lookup and the registering API.
//
// Two levels of immutable sorted arrays: a top array of leaves (each leaf at most kLeafCap entries,
// with the first base of each leaf beside it) published through one atomic pointer. A writer copies
// the top array and the one leaf it changes, publishes, waits out the trap epoch, then frees the old
// versions: O(n / kLeafCap + kLeafCap) per update instead of O(n), so 100 000 regions register in
// well under a second, and lookup is two branch-free binary searches (a mispredicted branch costs more
// than the cache line it guards).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "faultline/region.hpp"

namespace faultline::detail {

// The watermark (max_resident_pages): the filled windows in the order they were filled, and how many
// pages are resident. Not signal path (the handler and pager threads update it).
struct EvictState {
  std::mutex mutex;
  std::deque<std::pair<std::size_t, std::size_t>> fifo;  // (first page, pages)
  std::size_t resident = 0;
  std::size_t max_resident = 0;
  bool queued = false;  // waiting for the evictor thread
};

struct RegionImpl {
  std::uintptr_t base = 0, end = 0;
  Policy policy = Policy::guard;
  unsigned perms = 0;
  int prot = 0;  // perms as PROT_* bits
  std::size_t fault_around = 1;
  BarrierFn barrier = nullptr;
  void* barrier_data = nullptr;
  char name[64] = {};
  bool owned = false;
  // track_writes: one bit per page, set by the fault handler (after it unprotects the page).
  std::atomic<std::uint64_t>* dirty = nullptr;
  std::size_t dirty_words = 0;
  // provider, pager: the private read-write view of the same memfd pages (fills write there), and one
  // fill-state word per page (region/fill.hpp).
  std::uintptr_t alias = 0;
  std::atomic<std::uint32_t>* pstate = nullptr;
  FillFn fill = nullptr;
  void* fill_data = nullptr;
  std::shared_ptr<PagerImpl> pager;
  std::uint32_t fill_timeout_ms = 10000;
  // Pins that keep the region alive outside the trap epoch: pager requests not finished (a request
  // abandoned by its faulting thread outlives that thread's dispatch) and faulting threads that sleep
  // for a fill without holding the epoch. reset() waits for none to be left before freeing.
  std::atomic<std::uint32_t> inflight{0};
  // userfaultfd backend (region/uffd.cpp): the fd the range is registered with (-1: signal backend),
  // the mode, the read-ahead window, and the last fill failure (for the report).
  Backend backend = Backend::signals;
  UffdMode uffd_mode = UffdMode::handler_thread;
  WriteTracking write_tracking = WriteTracking::async_wp;
  int uffd = -1;
  std::unique_ptr<EvictState> evict;  // max_resident_pages set (userfaultfd provider/pager)
  FillFn writeback = nullptr;  // provider/pager on userfaultfd: where dirty pages go (flush, evict)
  void* writeback_data = nullptr;
  int remote_sock = -1;   // remote pager: the socket to the pager process
  int remote_stop = -1;   // remote pager: eventfd that ends the watchdog
  std::size_t readahead_max = 64;
  std::atomic<std::uint32_t> ra_window{1};
  std::atomic<std::uintptr_t> ra_next{0};  // the page after the last window filled
  std::atomic<std::uint64_t>* filled = nullptr;  // uffd fill policies: a bit per page already filled
  char backend_reason[96] = {};
  // The last fill failure, for reports: written by whichever thread failed (the handler thread, a pager
  // thread, a self-service fault) and read by the faulting thread's report. Guarded by a spin flag that
  // writers take and readers only try (a signal handler never waits for it). region/uffd_fill.cpp.
  char last_failure[160] = {};
  std::atomic<bool> last_failure_busy{false};

  RegionImpl() = default;
  RegionImpl(const RegionImpl&) = delete;
  RegionImpl& operator=(const RegionImpl&) = delete;
  ~RegionImpl() {
    delete[] dirty;
    delete[] pstate;
    delete[] filled;
  }
};

}  // namespace faultline::detail

namespace faultline::region {

constexpr std::size_t kLeafCap = 128;

// Sets / clears / copies RegionImpl::last_failure under its flag (uffd_fill.cpp). Async-signal-safe;
// copy_failure gives "" when a writer holds the flag.
void set_failure(detail::RegionImpl& r, const char* text) noexcept;
void copy_failure(detail::RegionImpl& r, char* out, std::size_t cap) noexcept;

struct Entry {
  std::uintptr_t base, end;
  detail::RegionImpl* r;
};
// Structure of arrays: the lookup's binary search reads only `base` (1 KiB per leaf).
struct Leaf {
  std::size_t n = 0;
  std::uintptr_t base[kLeafCap];
  std::uintptr_t end[kLeafCap];
  detail::RegionImpl* r[kLeafCap];

  Entry entry(std::size_t i) const noexcept { return Entry{base[i], end[i], r[i]}; }
  void set(std::size_t i, const Entry& e) noexcept {
    base[i] = e.base;
    end[i] = e.end;
    r[i] = e.r;
  }
  void push(const Entry& e) noexcept { set(n++, e); }
};
struct Top {
  std::vector<const Leaf*> leaf;
  std::vector<std::uintptr_t> first;  // first[i] == leaf[i]->e[0].base
};

extern std::atomic<const Top*> g_top;

// The region that contains addr, or null. Async-signal-safe; call inside a dispatch (the trap epoch
// keeps what it returns alive).
detail::RegionImpl* lookup(std::uintptr_t addr) noexcept;

// The signal-path fault handler and describer registered with the dispatcher.
Disposition handle_fault(FaultContext& ctx, void* data);
std::size_t describe(std::uintptr_t addr, char* buf, std::size_t cap, void* data);

// PROT_* bits for Perm bits.
int prot_of(unsigned perms) noexcept;

}  // namespace faultline::region
