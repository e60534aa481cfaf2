// region/impl.hpp: a region's record: what every backend shares, and the operations each backend
// provides (the backend seam). Not signal path, except the members marked so.
//
// A backend is a subclass of RegionImpl that owns its per-region state (backend/signals/signals.hpp,
// backend/uffd/uffd.hpp) and implements the virtual operations below. The region layer (the table,
// reserve/adopt, the Region handle) and the pager only ever call these operations, so every policy runs on
// every backend through one interface, and nothing outside backend/ tests which backend a region has.
//
// Virtual calls from signal context: on_fault(), describe_backend() and the store's fill() are called
// from fault handlers through the vtable. The vtables live in non-signal-path objects (each class's first
// virtual function, its destructor, is defined there), while the functions the signal path calls are
// defined in *_sig.cpp files, so the signal-path audit sees no reference to anything that may allocate.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/format.hpp"
#include "faultline/region.hpp"
#include "region/thread_stats.hpp"
#include "store/function_store.hpp"

namespace faultline::detail {

struct PagerImpl;
struct PagerSlot;

struct RegionImpl {
  RegionImpl(const RegionOptions& o, std::uintptr_t base, std::size_t size, bool owned);
  RegionImpl(const RegionImpl&) = delete;
  RegionImpl& operator=(const RegionImpl&) = delete;
  virtual ~RegionImpl();

  // ---- The backend seam ----------------------------------------------------------------------------
  virtual Backend backend() const noexcept = 0;
  // Makes the mapped, not yet published range behave as the policy says (initial protection, userfaultfd
  // registration, helper threads). On failure nothing of it is left behind.
  virtual Result<void> attach() = 0;
  // Asks the threads that work for the region on their own (a remote pager's watchdog) to let go of it;
  // they drop their pins (inflight) when they have.
  virtual void release_helpers() noexcept {}
  // Undoes attach() once the region is out of the table, no handler can reach it and no pin is left.
  virtual void detach() noexcept = 0;
  // Unmaps what the region mapped (nothing for adopted memory).
  virtual void unmap() noexcept = 0;
  // Signal path: a SIGSEGV or SIGBUS inside [base, end) that the kernel raised. Resolves it, turns it
  // into SIGBUS with the cause, or declines.
  virtual Disposition on_fault(FaultContext& ctx) noexcept = 0;
  // Whether the region's memory is still the mapping faultline made or adopted, checked before faultline
  // acts on it again (reset, discard, evict, a protection batch): a program that unmapped a region
  // behind faultline's back may have something else mapped there since, which faultline must never
  // touch. Backends check what the kernel shows (see os::range_matches) or what its events said.
  virtual bool memory_is_ours() const noexcept = 0;
  // Signal path: what a report should add about this region's backend (" backend userfaultfd").
  virtual void describe_backend(core::Formatter& f) const noexcept;
  // track_dirty: appends the dirty pages (ascending) and re-arms them; `defer` queues the re-arming.
  virtual Result<void> collect_dirty(std::vector<std::size_t>& pages, ProtectBatch* defer) = 0;
  // Region::protect, validated by the caller (range and permissions).
  virtual Result<void> protect(std::size_t first, std::size_t count, unsigned perms) = 0;
  // Region::discard, validated by the caller.
  virtual Result<void> discard(std::size_t first, std::size_t count) = 0;
  // Writes back the dirty pages of [first, first + count) (write_back regions); returns pages stored.
  virtual Result<std::size_t> write_back(std::size_t first, std::size_t count) = 0;
  // Region::evict, validated by the caller: write_back() (write_back regions), then discard() unless it
  // failed. Returns pages stored. A backend whose writers may run during the store overrides it so that
  // no write between the two is lost (userfaultfd).
  virtual Result<std::size_t> evict(std::size_t first, std::size_t count);
  // A pager thread serves `slot`, a request for this region: runs the store's fill, completes the
  // pages and answers (or frees) the slot. Ordinary code.
  virtual void serve(PagerImpl& pager, PagerSlot& slot) = 0;
  // In a forked child, from the fork hook (one thread, the parent's locks held): adapt the region to
  // the child (see "Fork" in faultline/region.hpp). Raw system calls only.
  virtual void after_fork_in_child() noexcept {}

  // ---- What every backend shares (fixed after creation, except where said) --------------------------
  std::uint64_t id = 0;  // unique in the process (protection batches refer to regions by it)
  std::uintptr_t base = 0, end = 0;
  Policy policy = Policy::guard;
  unsigned perms = 0;
  int prot = 0;  // perms as PROT_* bits
  std::size_t fault_around = 1;
  BarrierFn barrier = nullptr;
  void* barrier_data = nullptr;
  char name[64] = {};
  bool owned = false;               // reserve_region mapped the range
  Store* store = nullptr;           // provider, pager: &fn_store when the options gave a fill function
  store::FunctionStore fn_store;
  bool write_back_enabled = false;  // RegionOptions::write_back
  std::shared_ptr<PagerImpl> pager;
  std::uint32_t fill_timeout_ms = 10000;
  std::string backend_reason;
  // Pins that keep the region alive outside the trap epoch: pager requests not finished (a request
  // abandoned by its faulting thread outlives that thread's dispatch), faulting threads that sleep for a
  // fill without holding the epoch, helper threads that still hold it. Region::reset() waits for none to
  // be left before freeing.
  std::atomic<std::uint32_t> inflight{0};
  // Fork: set in a child for every region it inherited, with the pins the parent's threads held then
  // (those threads do not exist in the child: reset() does not wait for them).
  std::atomic<bool> inherited{false};
  // The kernel said the program unmapped (part of) the region: faultline must not act on it again.
  std::atomic<bool> unmapped_seen{false};
  std::uint32_t inherited_pins = 0;

  // RegionStats, as relaxed atomics updated on the fault path (signal path: atomics only). Each update
  // also counts in the working thread's ThreadStats (region/thread_stats.hpp).
  struct Counters {
    std::atomic<std::uint64_t> faults{0}, fills{0}, pages_filled{0}, readahead_pages{0}, failures{0},
        pages_evicted{0}, pages_written_back{0};
    std::atomic<std::uint64_t> fill_ns_log2[32] = {};
    // A fault handed to the region. Async-signal-safe.
    void note_fault() noexcept {
      add(faults);
      region::ThreadCounters::bump(region::thread_counters().faults, 1);
    }
    // A run of `pages` filled in `ns` for a fault on its first page, or (`ahead`) before any fault there
    // (asynchronous read-ahead: every page is read ahead). Async-signal-safe.
    void note_fill(std::size_t pages, std::int64_t ns, bool ahead = false) noexcept {
      const std::size_t extra = ahead ? pages : pages - 1;
      fills.fetch_add(1, std::memory_order_relaxed);
      pages_filled.fetch_add(pages, std::memory_order_relaxed);
      if (extra > 0) readahead_pages.fetch_add(extra, std::memory_order_relaxed);
      unsigned k = 0;
      for (std::uint64_t v = ns > 0 ? static_cast<std::uint64_t>(ns) : 1; v > 1 && k < 31; v >>= 1) ++k;
      fill_ns_log2[k].fetch_add(1, std::memory_order_relaxed);
      region::ThreadCounters& t = region::thread_counters();
      region::ThreadCounters::bump(t.fills, 1);
      region::ThreadCounters::bump(t.pages_filled, pages);
      if (extra > 0) region::ThreadCounters::bump(t.readahead_pages, extra);
      region::ThreadCounters::bump(t.fill_ns, ns > 0 ? static_cast<std::uint64_t>(ns) : 0);
    }
    // A fill that failed. Async-signal-safe.
    void note_failure() noexcept {
      add(failures);
      region::ThreadCounters::bump(region::thread_counters().failures, 1);
    }
    void note_evicted(std::uint64_t n) noexcept {
      add(pages_evicted, n);
      region::ThreadCounters::bump(region::thread_counters().pages_evicted, n);
    }
    void note_written_back(std::uint64_t n) noexcept {
      add(pages_written_back, n);
      region::ThreadCounters::bump(region::thread_counters().pages_written_back, n);
    }
    void add(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) noexcept { c.fetch_add(n, std::memory_order_relaxed); }
  };
  mutable Counters counters;

  RegionInfo info() const noexcept { return RegionInfo{name, base, end - base, policy, perms}; }
  // Whether the region's permissions allow `a` (unknown: yes). Signal path.
  bool permits(Access a) const noexcept {
    switch (a) {
      case Access::read: return (perms & perm_read) != 0;
      case Access::write: return (perms & perm_write) != 0;
      case Access::execute: return (perms & perm_exec) != 0;
      case Access::unknown: return true;
    }
    return true;
  }
  std::size_t pages() const noexcept;
  // Errc::not_found for `what` when memory_is_ours() says no: faultline leaves the range alone.
  Result<void> refuse_if_not_ours(const char* what) const;
  // Errc::unsupported for `what` on a region inherited across fork, with why.
  Result<void> refuse_if_inherited(const char* what) const;
  // Checks a page range and permissions for protect()/discard()/evict() and protection batches
  // (`what` names the call in the message).
  Result<void> check_range(std::size_t first, std::size_t count, unsigned perms, const char* what) const;

  // The last fill failure, for reports: written by whichever thread failed and read by the faulting
  // thread's report. Guarded by a spin flag that writers take and readers only try (a signal handler
  // never waits for it). Signal path (region/failure_sig.cpp); copy_failure gives "" while a writer holds it.
  void set_failure(const char* text) noexcept;
  void copy_failure(char* out, std::size_t cap) noexcept;
  // Writes "pager for region 'x' failed on page 7: EIO (errno 5): reason" (pages 7-9 for a run) into
  // buf, the cause every backend reports for a failed fill. Signal path.
  void fill_failure_text(char* buf, std::size_t cap, std::size_t first, std::size_t count, int err,
                         const char* reason) const noexcept;
  // set_failure(fill_failure_text(...)) for one page. Signal path.
  void record_fill_failure(std::size_t page, int err, const char* reason) noexcept;

 protected:
  // Queues a protection change in a batch (ProtectBatch is a friend of the base class only).
  void queue_protect(ProtectBatch& batch, std::uintptr_t addr, std::size_t len, int new_prot) const;

 private:
  char last_failure_[160] = {};
  std::atomic<bool> last_failure_busy_{false};
};

// Keeps a region alive while its holder sleeps outside the trap epoch (see RegionImpl::inflight).
struct Pin {
  RegionImpl& r;
  explicit Pin(RegionImpl& region) noexcept : r(region) { r.inflight.fetch_add(1, std::memory_order_acq_rel); }
  ~Pin() { r.inflight.fetch_sub(1, std::memory_order_acq_rel); }
  Pin(const Pin&) = delete;
  Pin& operator=(const Pin&) = delete;
};

// A bit per page, set and cleared atomically (dirty pages, filled pages).
class PageBits {
 public:
  PageBits() = default;
  explicit PageBits(std::size_t pages) : words_((pages + 63) / 64), bits_(new std::atomic<std::uint64_t>[words_]) {
    for (std::size_t i = 0; i < words_; ++i) bits_[i].store(0, std::memory_order_relaxed);
  }
  bool empty() const noexcept { return bits_ == nullptr; }
  bool test(std::size_t i) const noexcept {
    return (bits_[i / 64].load(std::memory_order_acquire) >> (i % 64)) & 1;
  }
  void set(std::size_t i) noexcept { bits_[i / 64].fetch_or(bit(i), std::memory_order_acq_rel); }
  void clear(std::size_t i) noexcept { bits_[i / 64].fetch_and(~bit(i), std::memory_order_acq_rel); }
  // Clears bit i and says whether it was set.
  bool take(std::size_t i) noexcept { return bits_[i / 64].fetch_and(~bit(i), std::memory_order_acq_rel) & bit(i); }
  void clear_range(std::size_t first, std::size_t count) noexcept {
    for (std::size_t i = first; i < first + count; ++i) clear(i);
  }
  // Takes every set bit, appending their indices (ascending).
  void take_all(std::vector<std::size_t>& out) {
    for (std::size_t w = 0; w < words_; ++w) {
      std::uint64_t b = bits_[w].exchange(0, std::memory_order_acq_rel);
      while (b != 0) {
        out.push_back(w * 64 + static_cast<unsigned>(__builtin_ctzll(b)));
        b &= b - 1;
      }
    }
  }

 private:
  static constexpr std::uint64_t bit(std::size_t i) noexcept { return std::uint64_t{1} << (i % 64); }
  std::size_t words_ = 0;
  std::unique_ptr<std::atomic<std::uint64_t>[]> bits_;
};

}  // namespace faultline::detail
