// faultline/region.hpp: windows of the address space with a policy for their faults.
//
// A region is a page-aligned range that faultline owns (reserve_region: it maps the range itself) or
// that the caller mapped (adopt_region). A fault inside it is resolved by the region's policy:
//   guard         every access is an error: the fault goes on to the report and the previous action,
//                 which names the region;
//   zero_fill     the first touch of a page makes it accessible with the region's permissions and
//                 zero-filled; `fault_around` pages are resolved per fault (mprotect + MADV_POPULATE in
//                 one go, so one signal replaces up to N demand-zero faults);
//   provider      content-initialised: on first touch the region's fill function writes the page (a run
//                 of `fault_around` pages) in the faulting thread's signal handler, then the pages
//                 appear with the region's permissions;
//   pager         external pager: the fault is handed to a Pager thread, which runs the fill function
//                 as ordinary code (it may allocate, lock, read files) while the faulting thread waits on
//                 a futex; the thread then resumes, or gets the failure;
//   track_writes  pages start write-protected; the first write to each page marks it dirty and makes it
//                 writable; collect_dirty() returns the dirty pages and write-protects them again;
//   barrier       the region's barrier function gets the fault context and decides (unprotect pages,
//                 rewrite registers, resume elsewhere, or decline): the read/write barrier of a
//                 concurrent relocating collector.
// An access that the region's permissions forbid (a write into a read-only region, an instruction
// fetch from a non-executable one) is never resolved: it reaches the crash report, which names the
// region, and then the previous action.
//
// Filled pages (provider, pager) appear atomically: the fill function writes into a second, private
// mapping of the same memory (FillRequest::dest), and only when it returns does the region's own view
// of those pages become accessible, so no thread ever sees a half-filled page. Two threads that fault on
// the same page at once both wait for one fill. A fill that fails (the function returns an error, the
// pager does not answer within `fill_timeout`, a pager thread faults on its own region) makes the
// faulting access end in SIGBUS with si_code BUS_ADRERR at the faulting address, the signal the kernel
// raises for a file page it cannot read; the crash report (or a one-line notice when the report is off)
// names the region and the error. Never a zero page, never a hang. The page stays unfilled, so a later
// access tries again.
//
// Backends. The signal backend serves every policy with mprotect and SIGSEGV. The userfaultfd backend
// serves zero_fill, provider, pager and track_writes on private anonymous memory without mprotect:
//   - zero_fill/provider/pager: missing-page faults are read by faultline's handler thread (in batches)
//     and filled with UFFDIO_ZEROPAGE / UFFDIO_COPY, a window of pages at a time (read-ahead: sequential
//     faults double the window up to `readahead_max` pages, random ones halve it); or, in self-service
//     mode (UffdMode::self_service, UFFD_FEATURE_SIGBUS), by the faulting thread itself in its SIGBUS
//     handler, with no thread switch (zero_fill and provider, up to 4 pages per provider fill; threads
//     that fault on one page at once may each run the provider, the first copy wins; a system call
//     that touches a missing page of such a region fails with EFAULT, as the kernel cannot raise the
//     signal for it);
//   - a failed fill poisons the page (UFFDIO_POISON): the faulting thread gets SIGBUS (BUS_MCEERR_AR)
//     and the report names the region and the error; the page stays failed until discard();
//   - track_writes: asynchronous write-protection (UFFD_FEATURE_WP_ASYNC): the kernel records the first
//     write to each page without any fault reaching user space; collect_dirty() harvests and re-arms
//     with one PAGEMAP_SCAN ioctl. WriteTracking::sync_wp uses synchronous write-protect faults instead
//     (the handler thread records the page and lifts the protection; collect_dirty() re-protects).
//     With writers running during collect_dirty() (mprotect and sync_wp alike), a page written while
//     its run is being re-armed may be reported now and missed next time: harvest with writers stopped
//     when that matters. WP_ASYNC harvests atomically per page.
// Backend::automatic picks userfaultfd when the kernel offers what the policy needs and signals
// otherwise (guard and barrier regions, adopted memory, no userfaultfd: ENOSYS, EPERM from
// vm.unprivileged_userfaultfd or seccomp, a missing feature); Region::backend_reason() says why.
// On the signal backend, filled regions are mapped from a memfd (MAP_SHARED, so a forked child shares
// their pages); the others are private anonymous memory. Adopted memory cannot be given a private
// alias: the provider and pager policies need reserve_region().
//
// Creating a region installs faultline's dispatcher (install()) if needed.
//
// Lookup: the table is a two-level copy-on-write array read without locks from signal handlers;
// register/unregister take a mutex, publish a new version and free the old one once no fault handler
// can still see it (the trap's epoch, see core/epoch.hpp). Lookup is O(log n).
//
// Thread-safety: every function here is thread-safe; none is async-signal-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "faultline/context.hpp"
#include "faultline/result.hpp"
#include "faultline/trap.hpp"

namespace faultline {

enum class Policy : std::uint8_t { guard, zero_fill, provider, pager, track_writes, barrier };
// "guard", "zero_fill", "provider", "pager", "track_writes", "barrier". Async-signal-safe.
const char* policy_name(Policy p) noexcept;

// Region permissions (what an access may do once its page is resolved).
enum Perm : unsigned { perm_none = 0, perm_read = 1, perm_write = 2, perm_exec = 4 };

// What a barrier function learns about its region.
struct RegionInfo {
  const char* name;
  std::uintptr_t base;
  std::size_t size;
  Policy policy;
  unsigned perms;
};

// A barrier: runs in signal context for every fault in its region. Return `resolved` after making the
// access possible (or moving the thread elsewhere), `declined` to let the fault go on.
using BarrierFn = Disposition (*)(FaultContext& ctx, const RegionInfo& region, void* data);

// A request to fill pages of a provider or pager region. The fill function writes `length` bytes at
// `dest` (all of them: pages it leaves alone keep whatever an earlier failed fill wrote).
struct FillRequest {
  RegionInfo region;
  std::size_t offset;    // byte offset in the region of the first page to fill
  std::size_t length;    // bytes to fill: a run of whole pages, at most fault_around of them
  Access access;         // what the faulting instruction attempted
  std::uintptr_t pc;     // the faulting instruction
  long tid;              // the faulting thread
  std::byte* dest;       // a writable private view of the pages, not yet visible in the region
};

// A fill's answer: error 0 when the pages are written, otherwise an errno value and, optionally, a
// reason with static storage duration. Both appear in the crash report.
struct FillStatus {
  int error = 0;
  const char* reason = nullptr;
};

// Fills pages. For Policy::provider it runs in the faulting thread's signal handler and must be
// async-signal-safe (memcpy, pread, arithmetic: no malloc, no locks the interrupted code may hold); for
// Policy::pager it runs on a Pager thread as ordinary code.
using FillFn = FillStatus (*)(const FillRequest& req, void* data);

class Pager;
class ProtectBatch;
namespace detail {
struct RegionImpl;
struct PagerImpl;
const std::shared_ptr<PagerImpl>& impl_of(const Pager& p) noexcept;
}  // namespace detail

struct PagerOptions {
  std::string name = "pager";  // thread name (first 15 bytes) and reports
  unsigned threads = 1;        // 1..64 threads serving requests
};

// Counters of a pager (relaxed snapshots).
struct PagerStats {
  std::uint64_t requests = 0;  // fills asked for
  std::uint64_t failed = 0;    // fills that reported an error (the faulting thread got SIGBUS)
  std::uint64_t abandoned = 0; // requests whose faulting thread stopped waiting (fill_timeout)
};

// External pager: threads that serve the fills of pager regions. A handle (copies share the pager);
// the threads stop when the last handle and the last region using it are gone. A pager's threads must
// not touch unfilled pages of the regions they serve: such a fault fails with SIGBUS (EDEADLK) instead
// of deadlocking.
class Pager {
 public:
  Pager() = default;
  static Result<Pager> start(const PagerOptions& opts = {});

  bool valid() const noexcept { return impl_ != nullptr; }
  PagerStats stats() const noexcept;

 private:
  friend const std::shared_ptr<detail::PagerImpl>& detail::impl_of(const Pager& p) noexcept;
  std::shared_ptr<detail::PagerImpl> impl_;
};

enum class Backend : std::uint8_t { automatic, signals, userfaultfd };
// "automatic", "signals", "userfaultfd". Async-signal-safe.
const char* backend_name(Backend b) noexcept;

// How a userfaultfd track_writes region learns about writes.
enum class WriteTracking : std::uint8_t {
  async_wp,  // UFFD_FEATURE_WP_ASYNC: the kernel records writes, no fault reaches user space
  sync_wp,   // synchronous write-protect: the first write to a page is a fault the handler thread
             // records before it lifts the protection (for kernels without WP_ASYNC, and to compare)
};

// How a userfaultfd region's missing pages are filled.
enum class UffdMode : std::uint8_t {
  handler_thread,  // faultline's handler thread reads the faults and fills them
  self_service,    // the faulting thread fills its own fault in a SIGBUS handler (zero_fill, provider)
};

struct RegionOptions {
  std::string name = "region";     // shown in reports; at most 63 bytes are kept
  Policy policy = Policy::zero_fill;
  unsigned perms = perm_read | perm_write;
  std::size_t fault_around = 1;    // zero_fill, provider, pager: pages resolved per fault, 1..512
  BarrierFn barrier = nullptr;     // required for Policy::barrier
  void* barrier_data = nullptr;
  FillFn fill = nullptr;           // required for Policy::provider and Policy::pager
  void* fill_data = nullptr;
  Pager pager;                     // required for Policy::pager
  // How long a faulting thread waits for a fill done by a pager or by another thread before its access
  // fails (SIGBUS, ETIMEDOUT). 1 ms .. 1 hour.
  std::chrono::milliseconds fill_timeout{10000};
  Backend backend = Backend::automatic;
  UffdMode uffd_mode = UffdMode::handler_thread;
  // userfaultfd zero_fill/provider/pager: the read-ahead window's limit in pages (1..512). The window
  // starts at fault_around.
  std::size_t readahead_max = 64;
  WriteTracking write_tracking = WriteTracking::async_wp;  // userfaultfd track_writes only
  // Policy::pager served by another process (see remote_pager below): a connected Unix socket, or -1.
  int remote_pager_socket = -1;
  // provider/pager on userfaultfd (handler thread): where dirty pages are written back by flush() and
  // evict(). Called as ordinary code with FillRequest::dest pointing at the page contents to store.
  // Setting it makes faultline track which filled pages were written (synchronous write-protect).
  FillFn writeback = nullptr;
  void* writeback_data = nullptr;
  // provider/pager on userfaultfd (handler thread): a watermark. When more pages than this are resident,
  // faultline's evictor thread evicts the oldest filled windows (writing dirty ones back first) until the
  // region is under it again. 0: no limit.
  std::size_t max_resident_pages = 0;
};

// A built-in file store: the content of a provider (or pager) region read from a range of a file, with
// pread in runs as long as the fill (the read-ahead window on userfaultfd), so that a program can map a
// large file lazily, privately, with its own paging policy. The region's pages are private: writes stay
// in memory (writing them back to the file is not offered yet). Pages past the end of the file read as
// zeros, as with mmap. Use fill_fn()/fill_data() as the region's fill; the store must outlive the region.
class FileStore {
 public:
  // Opens `path` (read-only unless `writable`); the region's offset 0 is the file's `offset` (a
  // multiple of the page size).
  static Result<FileStore> open(const std::string& path, std::uint64_t offset = 0, bool writable = false);
  FileStore() = default;
  FileStore(FileStore&& o) noexcept;
  FileStore& operator=(FileStore&& o) noexcept;
  FileStore(const FileStore&) = delete;
  FileStore& operator=(const FileStore&) = delete;
  ~FileStore();

  static FillFn fill_fn() noexcept;  // async-signal-safe (pread), so it also serves the signal backend
  // For RegionOptions::writeback: stores the pages with pwrite (needs `writable`). Grows the file.
  static FillFn writeback_fn() noexcept;
  void* fill_data() noexcept { return this; }
  std::uint64_t size() const noexcept { return size_; }  // the file's size when opened

 private:
  int fd_ = -1;
  std::uint64_t offset_ = 0, size_ = 0;
  friend FillStatus file_store_fill(const FillRequest&, void*);
  friend FillStatus file_store_writeback(const FillRequest&, void*);
};
FillStatus file_store_writeback(const FillRequest& req, void* data);
FillStatus file_store_fill(const FillRequest& req, void* data);

// A pager in another process (userfaultfd only). The program reserves the region with
// `remote_pager_socket` set to its end of a connected Unix socket: faultline gives the region its own
// userfaultfd, sends it over the socket (SCM_RIGHTS) with the region's description, and watches the
// socket. The pager process receives it with remote_pager::receive() and serves the faults with
// RemoteRegion::serve(), filling pages with UFFDIO_COPY from its own memory. If the pager process dies
// (the socket hangs up), faultline poisons every page still missing: the faulting threads, and any later
// access to such a page, get SIGBUS with a report naming the region ("the remote pager ... went away"),
// never a zero page and never a hang.
namespace remote_pager {

struct RegionDescription {
  std::uint64_t base = 0, size = 0, page_size = 0;
  char name[64] = {};
};

class RemoteRegion {
 public:
  RemoteRegion() = default;
  RemoteRegion(RemoteRegion&& o) noexcept : uffd_(o.uffd_), desc_(o.desc_) { o.uffd_ = -1; }
  RemoteRegion& operator=(RemoteRegion&&) = delete;
  RemoteRegion(const RemoteRegion&) = delete;
  ~RemoteRegion();
  const RegionDescription& description() const noexcept { return desc_; }
  // Serves faults until the program closes the region or `stop` returns true (checked between
  // batches, at least every 100 ms). `fn` fills FillRequest::dest (a buffer of this process) for
  // req.offset/req.length; a failure poisons the page. Not async-signal-safe; runs on any thread.
  Result<void> serve(FillFn fn, void* data, bool (*stop)(void*) = nullptr, void* stop_data = nullptr);

 private:
  friend Result<RemoteRegion> receive(int socket);
  int uffd_ = -1;
  RegionDescription desc_{};
};

// In the pager process: receives one region from the program over `socket`.
Result<RemoteRegion> receive(int socket);

}  // namespace remote_pager

// Whether this process can use userfaultfd, and if not why ("userfaultfd: EPERM (...)"). Thread-safe.
Result<void> userfaultfd_available();

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
  // The backend serving the region and, for Backend::automatic, why it was chosen.
  Backend backend() const noexcept;
  const char* backend_reason() const noexcept;

  // track_writes: the indices of the pages written since the last call, ascending, and re-arms them
  // (write-protects them again, one mprotect per run of adjacent pages). With `defer`, the re-arming is
  // queued in that batch instead and happens at its commit(): writes in between are not recorded, so
  // defer only while the writers are stopped (MPS's "shield"). Errc::invalid_argument for other policies.
  Result<std::vector<std::size_t>> collect_dirty(ProtectBatch* defer = nullptr);

  // Sets the protection of pages [first_page, first_page + count) to `perms`, which must be a subset of
  // the region's permissions. Lowering protection re-arms the policy: the next access the region
  // permits is resolved again (zero_fill and filled pages keep their contents; track_writes marks the
  // page dirty on the next write; a barrier sees the fault). Errc::invalid_argument for a range outside
  // the region or perms it does not have.
  Result<void> protect(std::size_t first_page, std::size_t count, unsigned perms);

  // Drops the contents of pages [first_page, first_page + count) and re-arms them, as if never touched:
  // the next access zero-fills (zero_fill), fills again (provider, pager) or sees zeros write-protected
  // (track_writes). Memory goes back to the system. Concurrent faults on those pages are safe: a fill
  // in progress is waited for (up to 10 s, then Errc::timed_out). Use it to evict the pages of a pager
  // after writing them back. Errc::invalid_argument for a range outside the region.
  Result<void> discard(std::size_t first_page, std::size_t count);

  // Regions with a writeback function: writes the pages written since they were filled (or last
  // flushed) back through it, runs of adjacent pages at a time, and write-protects them again. Returns
  // how many pages were written. Exact when the writers are stopped; a page written during its flush may
  // be stored with either contents and is tracked again afterwards.
  Result<std::size_t> flush();
  // Writes back the dirty pages of [first_page, first_page + count), then drops them all (discard()):
  // the next access fills them again from the provider or pager. Returns the pages written back.
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

// Protection changes queued and applied together: commit() sorts them, merges adjacent ranges that end
// with the same protection, and issues one mprotect per merged range (one mprotect costs microseconds
// whatever its length). Changes that overlap are applied in the order they were added, unmerged. The destructor commits what is left. Not thread-safe: one batch per thread.
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
  friend class Region;
  struct Op {
    std::uintptr_t addr;
    std::size_t len;
    int prot;
  };
  std::vector<Op> ops_;
};

// Maps `size` bytes (a multiple of the page size) for a new region. Provider and pager regions are
// mapped from a memfd (see above).
Result<Region> reserve_region(std::size_t size, const RegionOptions& opts);
// Registers memory the caller mapped: [addr, addr + size), page-aligned, entirely mapped, overlapping
// no other region. zero_fill drops the current contents (MADV_DONTNEED) and protects the range. The
// provider and pager policies get Errc::unsupported (they need reserve_region).
Result<Region> adopt_region(void* addr, std::size_t size, const RegionOptions& opts);

// Resolves the pages of [addr, addr + len) for `access` before a system call touches them (a system
// call that meets a protected page fails with EFAULT instead of faulting). Addresses outside every
// region are ignored. Errc::invalid_argument for an access the region forbids.
Result<void> prefault(const void* addr, std::size_t len, Access access);

// Number of registered regions.
std::size_t region_count();

}  // namespace faultline
