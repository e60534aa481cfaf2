// faultline/region.hpp: windows of the address space with a policy for their faults.
//
//   faultline::RegionOptions o;
//   o.name = "heap";
//   o.policy = faultline::Policy::zero_fill;
//   o.fault_around = 16;                                   // pages resolved per fault
//   auto heap = faultline::reserve_region(1 << 30, o);     // Result<Region>
//   if (!heap) { std::fprintf(stderr, "%s\n", heap.error().message().c_str()); return 1; }
//   static_cast<char*>(heap->data())[12345] = 1;            // a fault faultline resolves
//
// A region is a page-aligned range that faultline owns (reserve_region: it maps the range itself) or
// that the caller mapped (adopt_region). A fault inside it is resolved by the region's policy
// (faultline/policy.hpp), carried out by its backend (faultline/backend.hpp); provider and pager regions
// get their pages from a store or a fill function (faultline/store.hpp), pager regions through a Pager
// (faultline/pager.hpp) or a pager process (faultline/remote_pager.hpp).
//
// An access that the region's permissions forbid (a write into a read-only region, an instruction fetch
// from a non-executable one) is never resolved: it reaches the crash report, which names the region,
// and then the previous action.
//
// Filled pages (provider, pager) appear atomically: the store writes into a view that is not yet
// visible, and only when it returns do the pages appear with the region's permissions, so no thread ever
// sees a half-filled page. Two threads that fault on the same page at once both wait for one fill. A fill
// that fails (the store returns an error, the pager does not answer within `fill_timeout`, a pager
// thread faults on its own region) makes the faulting access end in SIGBUS with si_code BUS_ADRERR at
// the faulting address, the signal the kernel raises for a file page it cannot read; the crash report
// (or a one-line notice when the report is off) names the region and the error. Never a zero page, never
// a hang. On the signal backend the page stays unfilled, so a later access tries again; on userfaultfd
// it stays poisoned until discard().
//
// On the signal backend, provider and pager regions are mapped from a memfd (MAP_SHARED, so a forked
// child shares their pages); the others are private anonymous memory. Adopted memory cannot be given a
// second view: the provider and pager policies need reserve_region().
//
// Fork. Nothing a forked child does with its copies of the parent's regions changes the parent's regions.
// In the child every inherited region is marked inherited: reset() (and the destructor) only drops the
// child's copy (its table entry and its own mappings); collect_dirty(), protect(), discard(), flush(),
// evict() and protection batches return Errc::unsupported. Faults in the child:
//   - signal backend: guard, barrier, zero_fill and track_dirty regions work on the child's own memory.
//     Provider and pager regions share their pages with the parent (one memfd): pages filled before the
//     fork are there; an access to any other page ends in SIGBUS with the cause (only the process that
//     created the region fills it, or the two would write the same page unbeknown to each other).
//   - userfaultfd: the child's memory is a private copy; pages filled before the fork are there. A page
//     missing in a zero_fill or track_dirty region reads as zeros, its content. Provider regions are
//     served in the child's faulting threads through a userfaultfd of the child's own (the store's fill
//     must be async-signal-safe; otherwise, and for pager regions, whose threads do not exist in the
//     child, the access ends in SIGBUS with the cause). Dirty tracking does not follow into the child.
// The parent's pager, handler and evictor threads, its userfaultfds and its in-flight fills stay the
// parent's; the child may create and use regions of its own as any process.
//
// Creating a region installs faultline's dispatcher (install()) if needed. Lookup from the fault handler
// is lock-free and O(log n); registering and unregistering take a lock and wait until no fault handler
// can still see what they replace.
//
// Thread-safety: every function here is thread-safe; none is async-signal-safe. A Region handle itself
// is not synchronised: do not use one handle from two threads at once.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "faultline/backend.hpp"
#include "faultline/context.hpp"
#include "faultline/pager.hpp"
#include "faultline/policy.hpp"
#include "faultline/result.hpp"
#include "faultline/store.hpp"

namespace faultline {

class ProtectBatch;
namespace detail {
struct RegionImpl;
}  // namespace detail

struct RegionOptions {
  std::string name = "region";     // shown in reports; at most 63 bytes are kept
  Policy policy = Policy::zero_fill;
  unsigned perms = perm_read | perm_write;
  std::size_t fault_around = 1;    // zero_fill, provider, pager: pages resolved per fault, 1..512
  BarrierFn barrier = nullptr;     // required for Policy::barrier
  void* barrier_data = nullptr;
  // provider, pager: where the pages come from: a store (not owned; it must outlive the region) or a
  // fill function with its data, exactly one of the two.
  Store* store = nullptr;
  FillFn fill = nullptr;
  void* fill_data = nullptr;
  Pager pager;                     // required for Policy::pager (unless remote_pager_socket is set)
  // How long a faulting thread waits for a fill done by a pager or by another thread before its access
  // fails (SIGBUS, ETIMEDOUT). 1 ms .. 1 hour.
  std::chrono::milliseconds fill_timeout{10000};
  Backend backend = Backend::automatic;
  UserfaultfdMode userfaultfd_mode = UserfaultfdMode::handler_thread;
  // userfaultfd zero_fill/provider/pager: the read-ahead window's limit in pages (1..512). The window
  // starts at fault_around.
  std::size_t readahead_max = 64;
  // userfaultfd zero_fill/provider, handler-thread mode: asynchronous read-ahead. When a sequential
  // stream's window has reached readahead_max, the handler thread also fills the windows after it (1,
  // then 2, 4, ... as the stream goes on, at most 2 MiB ahead), so that the stream finds them present
  // instead of paying a round trip to the handler thread for each. A fault that continues the stream
  // is woken once, when its window and that read-ahead are in (regions without write-back): its access
  // waits that long, and the stream does not race the handler thread through the batch.
  // A fill there that fails fails nothing (the stream's own fault fills or fails the page). Off: each
  // window is filled at its first fault only. Never with max_resident_pages (what is read ahead would
  // be evicted again).
  bool async_readahead = true;
  // userfaultfd provider regions, handler-thread mode: where filled pages live (faultline/backend.hpp).
  FillPath fill_path = FillPath::automatic;
  DirtyTracking dirty_tracking = DirtyTracking::automatic;  // userfaultfd track_dirty only
  // Policy::pager served by another process (faultline/remote_pager.hpp): a connected Unix socket, or -1.
  int remote_pager_socket = -1;
  // The credentials the pager process must have (SO_PEERCRED, checked before the region is sent): a uid
  // (-1: any) and a pid (0: any).
  long remote_pager_uid = -1;
  long remote_pager_pid = 0;
  // provider/pager on userfaultfd (handler thread) with a writable store: track which filled pages are
  // written (they are installed write-protected; the first write to each is recorded), so that flush()
  // and evict() store them with Store::write_back.
  bool write_back = false;
  // provider/pager on userfaultfd (handler thread): a watermark. When more pages than this are resident,
  // faultline's evictor thread evicts the oldest filled windows (writing dirty ones back first) until the
  // region is under it again. 0: no limit.
  std::size_t max_resident_pages = 0;
  // zero_fill regions from reserve_region(), on the signal backend: 2 MiB pages. The region is aligned
  // to 2 MiB and advised MADV_HUGEPAGE, and a fault fills the whole 2 MiB block around it, so that the
  // kernel can back it with one transparent huge page (it does where THP is enabled and it has one to
  // give: /sys/kernel/mm/transparent_hugepage/enabled "always" or "madvise"). The size must be a
  // multiple of 2 MiB. Errc::unsupported where THP is "never" or absent, for other policies, adopted
  // memory and Backend::userfaultfd (whose huge pages need reserved hugetlbfs pages), with the reason.
  bool huge_pages = false;
};

// A region's counters (Region::stats()): relaxed snapshots, each counter exact, the set not taken at one
// instant. Updated on the fault path with relaxed atomic adds (no allocation, no lock).
struct RegionStats {
  std::uint64_t faults = 0;              // faults handed to the region (signal backend: its handler ran;
                                         // userfaultfd: fault messages read, self-service faults)
  std::uint64_t fills = 0;               // runs of pages filled (zero_fill, provider, pager)
  std::uint64_t pages_filled = 0;        // the pages of those runs
  std::uint64_t readahead_pages = 0;     // of those, pages beyond the faulting one (fault-around, read-ahead)
  std::uint64_t failures = 0;            // fills that failed (the access ended in SIGBUS with the cause)
  std::uint64_t pages_evicted = 0;       // pages dropped by evict() and the resident-page watermark
  std::uint64_t pages_written_back = 0;  // pages stored by flush(), evict() and the watermark
  // Fill latency as the filling thread sees it (the store's or pager's answer and installing the pages):
  // fill_ns_log2[k] counts fills that took [2^k, 2^(k+1)) ns; the last bucket also counts longer ones.
  std::uint64_t fill_ns_log2[32] = {};
  // The fill latency below which fraction `q` (0..1) of the fills fall, from the histogram (the upper
  // edge of the bucket where the quantile lies); 0 without fills.
  std::uint64_t fill_ns_quantile(double q) const noexcept;
};

// One thread's share of the regions' work: the same counters as RegionStats, counted by the thread that
// did the work. On the signal backend and in self-service mode that is the faulting thread (in its
// handler); in handler-thread mode it is the userfaultfd handler thread that read the fault and filled
// it (the faulting thread sleeps in the kernel meanwhile and counts nothing); a pager thread counts the
// fills it made, and the thread that calls flush() or evict() (or the evictor thread) counts the pages it
// wrote back and evicted.
struct ThreadStats {
  long tid = 0;                          // the thread's id (gettid)
  std::uint64_t faults = 0;              // faults it handled (see RegionStats::faults)
  std::uint64_t fills = 0;               // runs of pages it filled
  std::uint64_t pages_filled = 0;        // their pages
  std::uint64_t readahead_pages = 0;     // of those, pages beyond the faulting one
  std::uint64_t failures = 0;            // fills that failed
  std::uint64_t pages_evicted = 0;       // pages it evicted
  std::uint64_t pages_written_back = 0;  // pages it wrote back
  std::uint64_t fill_ns = 0;             // the time its fills took, in all (fill_ns / fills: the mean)
};

// The calling thread's counters since it started. Async-signal-safe (initial-exec TLS, relaxed loads);
// thread-safe.
ThreadStats this_thread_stats() noexcept;

// The counters of each userfaultfd handler thread running (set_userfaultfd_handler_threads()), in the
// order they started: how the fault messages spread over them. Empty before the first userfaultfd region
// in handler-thread mode. Allocates: not async-signal-safe; thread-safe.
std::vector<ThreadStats> userfaultfd_handler_thread_stats();

// Prints the counters on stderr from now on: each region's RegionStats when it ends ("faultline stats:
// region 'heap': 12 faults, 12 fills of 768 pages (756 read ahead), ..."), and a summary when the process
// exits (std::exit or a return from main; not a death by signal, nor _exit): for each signal the
// dispatcher saw, its TrapCounters; each region still registered; each userfaultfd handler thread's
// ThreadStats. Idempotent. The environment variable FAULTLINE_STATS (set, not "0"; read as secure_getenv
// reads it) does the same from the first region registered; `faultline catch --stats` sets it for the
// program it runs, whose preloaded library calls this at load. Not async-signal-safe; thread-safe.
void print_stats();

// A registered region. Destroying it unregisters the region (and unmaps a reserved range) after every
// fault handler that may be using it has left.
class [[nodiscard]] Region {
 public:
  Region() = default;
  Region(Region&& o) noexcept : impl_(o.impl_) { o.impl_ = nullptr; }
  Region& operator=(Region&& o) noexcept;
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;
  ~Region() { (void)reset(); }

  bool valid() const noexcept { return impl_ != nullptr; }
  void* data() const noexcept;
  std::size_t size() const noexcept;
  RegionInfo info() const noexcept;
  // The backend serving the region and why it was chosen.
  Backend backend() const noexcept;
  // Its counters (see RegionStats); zeros for an empty handle.
  RegionStats stats() const noexcept;
  const char* backend_reason() const noexcept;

  // track_dirty: the indices of the pages written since the last call, ascending, and re-arms them
  // (write-protects them again, one system call per run of adjacent pages). With `defer` (signal
  // backend), the re-arming is queued in that batch instead and happens at its commit(): writes in
  // between are not recorded, so defer only while the writers are stopped (MPS's "shield").
  // With writers running (mprotect and sync_wp alike), a page written while its run is being re-armed
  // may be reported now and missed next time: harvest with writers stopped when that matters. WP_ASYNC
  // harvests atomically per page. Errc::invalid_argument for other policies.
  Result<std::vector<std::size_t>> collect_dirty(ProtectBatch* defer = nullptr);

  // Signal backend: sets the protection of pages [first_page, first_page + count) to `perms`, a subset
  // of the region's permissions. Lowering protection re-arms the policy: the next access the region
  // permits is resolved again (zero_fill and filled pages keep their contents; track_dirty marks the page
  // dirty on the next write; a barrier sees the fault). Errc::invalid_argument for a range outside the
  // region or perms it does not have; Errc::unsupported on userfaultfd.
  Result<void> protect(std::size_t first_page, std::size_t count, unsigned perms);

  // Drops the contents of pages [first_page, first_page + count) and re-arms them, as if never touched:
  // the next access zero-fills (zero_fill), fills again (provider, pager; a poisoned page is cleared) or
  // sees zeros write-protected (track_dirty). Memory goes back to the system. Dirty pages are not
  // written back: use evict() for that. Concurrent faults on those pages are safe: a fill in progress is
  // waited for (up to 10 s, then Errc::timed_out). Errc::invalid_argument for a range outside the region.
  Result<void> discard(std::size_t first_page, std::size_t count);

  // Regions with write_back: writes the pages written since they were filled (or last flushed) to the
  // store, runs of adjacent pages in one batch, and write-protects them again. Returns how many pages
  // were written. Exact when the writers are stopped; a page written during its flush may be stored
  // with either contents and is tracked again afterwards. A failed write-back leaves the pages dirty.
  Result<std::size_t> flush();
  // Writes back the dirty pages of [first_page, first_page + count) (regions with write_back), then
  // drops them all: the next access fills them again from the store. Returns the pages written back.
  Result<std::size_t> evict(std::size_t first_page, std::size_t count);

  // Unregisters now. Errc::busy from inside a fault handler.
  Result<void> reset();

 private:
  friend Result<Region> reserve_region(std::size_t, const RegionOptions&);
  friend Result<Region> adopt_region(void*, std::size_t, const RegionOptions&);
  friend class ProtectBatch;
  explicit Region(detail::RegionImpl* impl) : impl_(impl) {}
  detail::RegionImpl* impl_ = nullptr;
};

// Protection changes (signal backend) queued and applied together: commit() sorts them, merges
// adjacent ranges that end with the same protection, and issues one mprotect per merged range (one
// mprotect costs microseconds whatever its length). Changes that overlap are applied in the order they
// were added, unmerged. A batch refers to its regions, not to addresses: when one of them has ended
// (reset, destroyed) or its memory is no longer the mapping faultline made, commit() applies nothing and
// says which (validate first, act last); no region can end while a commit is applying its changes. The
// destructor commits what is left. Not thread-safe: one batch per thread.
class ProtectBatch {
 public:
  ProtectBatch() = default;
  ProtectBatch(const ProtectBatch&) = delete;
  ProtectBatch& operator=(const ProtectBatch&) = delete;
  ~ProtectBatch() { (void)commit(); }

  // Queues Region::protect(first_page, count, perms); validated now, applied at commit().
  Result<void> add(const Region& region, std::size_t first_page, std::size_t count, unsigned perms);
  // Applies the queued changes; returns how many mprotect calls that took.
  Result<std::size_t> commit();
  std::size_t pending() const noexcept { return ops_.size(); }

 private:
  friend struct detail::RegionImpl;
  friend class Region;
  struct Op {
    std::uint64_t region;  // the region's id: a change for a region that has ended is dropped
    std::uintptr_t addr;
    std::size_t len;
    int prot;
  };
  std::vector<Op> ops_;
};

// Maps `size` bytes (a multiple of the page size) for a new region.
Result<Region> reserve_region(std::size_t size, const RegionOptions& opts);

// The backend reserve_region() would give a region of these options, and why (Region::backend_reason()'s
// text), without reserving anything; the error reserve_region() would return when no backend can serve
// them. It may open userfaultfds, as reserve_region() would. `faultline info` lists it per capability.
struct BackendChoice {
  Backend backend = Backend::signals;
  std::string reason;
};
Result<BackendChoice> explain_backend(const RegionOptions& opts);
// Registers memory the caller mapped: [addr, addr + size), page-aligned, entirely mapped, overlapping
// no other region. zero_fill drops the current contents (MADV_DONTNEED) and protects the range. The
// provider and pager policies get Errc::unsupported (they need reserve_region). Served by the signal
// backend.
Result<Region> adopt_region(void* addr, std::size_t size, const RegionOptions& opts);

// Resolves the pages of [addr, addr + len) for `access` before a system call touches them (a system
// call that meets a protected page fails with EFAULT instead of faulting). Addresses outside every
// region are ignored. Errc::invalid_argument for an access the region forbids.
Result<void> prefault(const void* addr, std::size_t len, Access access);

// Number of registered regions.
std::size_t region_count();

}  // namespace faultline
