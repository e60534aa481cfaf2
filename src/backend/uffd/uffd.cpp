// backend/uffd/uffd.cpp: the userfaultfd backend's regions: the fds, choosing, registering, collecting
// dirty pages, discarding, write-back and serving pager requests. Not signal path. See uffd.hpp.
#include "core/guard.hpp"
#include "backend/uffd/uffd.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/page.hpp"
#include "faultline/kernel_mask.hpp"
#include "backend/monitor.hpp"
#include "os/linux/fork_hooks.hpp"
#include "os/linux/inject_state.hpp"
#include "os/linux/maps.hpp"
#include "os/linux/uffd.hpp"
#include "pager/pager.hpp"
#include "region/table.hpp"

namespace faultline::backend::uffd {

namespace {

struct FdState {
  int fd = -1;
  bool tried = false;         // a permanent answer is cached; a transient failure is tried again next time
  bool user_mode_only = false;  // opened with UFFD_USER_MODE_ONLY (vm.unprivileged_userfaultfd = 0)
  bool unmap_events = false;    // its UNMAP events are read (by the handler thread or the unmap monitor)
  std::uint64_t features = 0;   // the UFFD_FEATURE_* bits it was opened with
  int continue_wp = -1;         // whether UFFDIO_CONTINUE_MODE_WP works on it: -1 not tried yet
  std::string why;
};

std::mutex g_mutex;
FdState g_fds[3];
pid_t g_owner = 0;  // the process the fds belong to (fork gives a child none)
std::uint32_t g_mask_generation = 0;  // the kernel mask g_fds were opened under

std::string errno_text(const char* what, long neg_errno) {
  const int e = static_cast<int>(-neg_errno);
  const char* n = strerrorname_np(e);
  return std::string(what) + ": " + (n != nullptr ? n : "E?") + " (" + std::strerror(e) + ")";
}

// fork: the locks are taken around it (the handler thread takes its lock every tick; a child that
// inherited it locked would wedge its own handler thread). After fork the child shares the parent's
// userfaultfds (tied to the parent's memory) and has no handler thread: forget both, the child opens its
// own on first use.
void lock_for_fork() {
  g_mutex.lock();
  handler_lock_for_fork();
  evictor_lock_for_fork();
}
void unlock_after_fork() {
  evictor_unlock_after_fork();
  handler_unlock_after_fork();
  g_mutex.unlock();
}
void forget_after_fork() {
  for (FdState& s : g_fds) {
    if (s.fd >= 0) os::raw_close(s.fd);  // the parent's: the parent keeps its own reference
    s = FdState{};
  }
  g_owner = 0;
  evictor_forget_after_fork();
  handler_forget_after_fork();
  unlock_after_fork();
}

// The features each fd needs, and those it takes when the kernel has them (without POISON a failed page
// is remembered and its access ends in a queued SIGBUS: fill_sig.cpp).
struct Wanted {
  std::uint64_t required, optional;
};
Wanted features_of(Kind k) {
  switch (k) {
    // The shmem cache's (FillPath::shmem_cache) where the kernel has them.
    case Kind::handler:
      return {UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP,
              UFFD_FEATURE_POISON | UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_MINOR_SHMEM | UFFD_FEATURE_WP_HUGETLBFS_SHMEM};
    case Kind::sigbus: return {UFFD_FEATURE_SIGBUS, UFFD_FEATURE_POISON};
    case Kind::wp_async: return {UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED, 0};
  }
  return {0, 0};
}

// A failure that may go away (descriptors or memory freed): not cached, tried again next time.
bool transient(long neg_errno) {
  const long e = -neg_errno;
  return e == EMFILE || e == ENFILE || e == ENOMEM || e == EAGAIN || e == EINTR || e == ENOBUFS;
}

// The names of the UFFD_FEATURE_* bits in `bits`, for reasons ("WP_ASYNC, WP_UNPOPULATED").
std::string feature_names(std::uint64_t bits) {
  std::string out;
  for (const auto& f : kernel_mask::facilities()) {
    if (f.kind == kernel_mask::Kind::feature && (bits & f.value) != 0) {
      if (!out.empty()) out += ", ";
      out += f.name;
      if (f.major != 0) out += " (Linux " + std::to_string(f.major) + "." + std::to_string(f.minor) + ")";
    }
  }
  return out;
}

// Opens a userfaultfd with `want.required` and whatever of `want.optional` the kernel offers
// (os::uffd_open_with); -1 and why when that cannot be had (*is_transient says whether trying again later
// may work; *user_mode_only whether the fd serves user-mode faults only).
int open_with(Wanted want, std::string* why, bool* is_transient = nullptr, bool* user_mode_only = nullptr,
              std::uint64_t* features = nullptr) {
  const os::UffdOpened o = os::uffd_open_with(want.required, want.optional);
  if (!os::is_err(o.fd)) {
    if (user_mode_only != nullptr) *user_mode_only = o.user_mode_only;
    if (features != nullptr) *features = o.features;
    return static_cast<int>(o.fd);
  }
  if (o.missing != 0) {
    *why = "this kernel's userfaultfd lacks " + feature_names(o.missing);
  } else if (o.in_api) {
    *why = errno_text("UFFDIO_API", o.fd);
  } else {
    *why = errno_text("userfaultfd(2)", o.fd) + "; " +
           (o.dev_err != 0 ? errno_text("/dev/userfaultfd", o.dev_err) : std::string("/dev/userfaultfd: no"));
  }
  if (is_transient != nullptr) *is_transient = o.missing == 0 && (transient(o.fd) || transient(o.dev_err));
  return -1;
}

int fd_locked(Kind kind, std::string* why) {
  if (g_owner != getpid()) {
    os::fork_hooks::add({os::fork_hooks::kUffd, lock_for_fork, unlock_after_fork, forget_after_fork});
    g_owner = getpid();
  }
  // A new kernel mask: what was tried is asked again (fds in use stay open: their regions keep them).
  if (const std::uint32_t gen = os::inject::g_mask.generation.load(std::memory_order_acquire); gen != g_mask_generation) {
    g_mask_generation = gen;
    for (FdState& f : g_fds) f = FdState{};
  }
  FdState& s = g_fds[static_cast<int>(kind)];
  if (!s.tried) {
    bool again = false;
    // The self-service and asynchronous write-protect fds have no reader of their own: they ask for UNMAP
    // events only when the unmap monitor runs to read them (an unread event would hold the munmap).
    const bool watched = kind != Kind::handler && monitor::start();
    Wanted want = features_of(kind);
    if (watched) want.required |= UFFD_FEATURE_EVENT_UNMAP;
    s.fd = open_with(want, &s.why, &again, &s.user_mode_only, &s.features);
    s.tried = !again;
    s.unmap_events = s.fd >= 0 && (kind == Kind::handler || watched);
    if (s.fd >= 0 && watched) monitor::watch_fd(s.fd);
  }
  if (s.fd < 0 && why != nullptr) *why = s.why;
  return s.fd;
}

bool pagemap_scan_works() {
  const int pagemap = pagemap_fd();
  if (pagemap < 0) return false;
  struct pm_scan_arg arg{};
  arg.size = sizeof arg;
  return os::pagemap_scan(pagemap, &arg) != -ENOTTY;
}

// Which of the fds serves a region: asynchronous write tracking has its own; synchronous write tracking
// and missing-page fills go to the handler thread's, unless self-service.
Kind kind_of(Policy policy, DirtyTracking tracking, UserfaultfdMode mode) {
  if (policy == Policy::track_dirty) return tracking == DirtyTracking::async_wp ? Kind::wp_async : Kind::handler;
  return mode == UserfaultfdMode::self_service ? Kind::sigbus : Kind::handler;
}

}  // namespace

UffdRegion::UffdRegion(const RegionOptions& o, std::uintptr_t region_base, std::size_t size)
    : RegionImpl(o, region_base, size, true),
      mode(o.userfaultfd_mode),
      tracking(resolve_tracking(o)),
      readahead_max(o.readahead_max),
      async_readahead(o.async_readahead),
      remote_sock(o.remote_pager_socket),
      remote_uid(o.remote_pager_uid),
      remote_pid(o.remote_pager_pid) {
  ra_window.store(static_cast<std::uint32_t>(o.fault_around));
  if (store != nullptr) run_align = store->preferred_run_pages();
  if (o.max_resident_pages != 0) {
    watermark = std::make_unique<EvictState>();
    watermark->max_resident = o.max_resident_pages;
  }
}

UffdRegion::~UffdRegion() {
  release_cache();
  // A remote pager's region owns its userfaultfd (closed by detach() unless the memory was no longer
  // faultline's) and the watchdog's eventfd; they are closed only once the watchdog has let go of the
  // region (its pin), so that no write or ioctl can reach a reused number.
  if (remote_stop >= 0) {
    os::raw_close(remote_stop);
    if (fd >= 0) os::raw_close(fd);
  }
}

FillStatus store_fill_catching(Store& store, const FillRequest& req) noexcept {
  try {
    return store.fill(req);
  } catch (...) {
    return FillStatus{EIO, "the store's fill threw an exception"};
  }
}

Kind UffdRegion::kind() const noexcept { return kind_of(policy, tracking, mode); }

int probe(std::string* why) { return open_with(features_of(Kind::handler), why); }

int fd_for(Kind kind, std::string* why) {
  std::lock_guard lock(g_mutex);
  return fd_locked(kind, why);
}

namespace {

// Whether asynchronous write tracking can be had: its fd (WP_ASYNC, WP_UNPOPULATED) and PAGEMAP_SCAN;
// *why says why not.
bool async_wp_locked(std::string* why) {
  if (fd_locked(Kind::wp_async, why) < 0) return false;
  if (pagemap_scan_works()) return true;
  *why = "PAGEMAP_SCAN (Linux 6.7) is not available on /proc/self/pagemap";
  return false;
}

// DirtyTracking::automatic made concrete: async_wp where it can be had, sync_wp otherwise (*why says why
// not async). Other options as they are.
DirtyTracking resolve_locked(const RegionOptions& o, std::string* why) {
  if (o.policy != Policy::track_dirty || o.dirty_tracking != DirtyTracking::automatic) return o.dirty_tracking;
  return async_wp_locked(why) ? DirtyTracking::async_wp : DirtyTracking::sync_wp;
}

// Whether a region of these options gets the shmem cache (FillPath::shmem_cache): only provider regions
// in handler-thread mode ask; the kernel must have minor faults on shmem (and write-protection of shmem
// for write-back). *why: why not, for a region that asked ("" when it did not, or asked for copies).
bool shmem_cache_locked(const RegionOptions& o, std::string* why) {
  why->clear();
  if (o.policy != Policy::provider || o.userfaultfd_mode != UserfaultfdMode::handler_thread || o.huge_pages ||
      o.remote_pager_socket >= 0 || o.fill_path == FillPath::copy) {
    return false;
  }
  // Automatic: only a store that fills the cache by its fd is faster over it (Store::fills_by_fd).
  if (o.fill_path == FillPath::automatic && (o.store == nullptr || !o.store->fills_by_fd())) return false;
  if ((o.perms & perm_exec) != 0) {
    // A memfd may not be mappable executable (vm.memfd_noexec, MFD_NOEXEC_SEAL: Linux 6.3).
    *why = "executable pages are copied (a memfd may be mapped noexec)";
    return false;
  }
  if (fd_locked(Kind::handler, why) < 0) return false;
  std::uint64_t need = UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_MINOR_SHMEM;
  if (o.write_back) need |= UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
  FdState& s = g_fds[static_cast<int>(Kind::handler)];
  if (const std::uint64_t lacking = need & ~s.features; lacking != 0) {
    *why = "this kernel's userfaultfd lacks " + feature_names(lacking);
    return false;
  }
  if (o.write_back) {  // filled pages are mapped write-protected
    if (s.continue_wp < 0) s.continue_wp = continue_wp_works();
    if (s.continue_wp == 0) {
      *why = "this kernel's UFFDIO_CONTINUE cannot map write-protected (UFFDIO_CONTINUE_MODE_WP, Linux 6.4), "
             "which write-back needs";
      return false;
    }
    if (s.continue_wp < 0) {
      *why = "UFFDIO_CONTINUE_MODE_WP could not be tried (the probe's memfd, mapping or registration failed)";
      return false;
    }
  }
  return true;
}

}  // namespace

DirtyTracking resolve_tracking(const RegionOptions& o) {
  std::string ignored;
  std::lock_guard lock(g_mutex);
  return resolve_locked(o, &ignored);
}

// The reason's clause for the fill path (usable() and create()).
constexpr std::string_view kCached = "; a shmem cache mapped by minor faults";
constexpr std::string_view kCopied = "; pages copied, no shmem cache: ";

bool usable(const RegionOptions& o, std::string* reason, bool* shmem_cache) {
  *shmem_cache = false;
  if (o.policy == Policy::guard || o.policy == Policy::barrier) {
    *reason = std::string("the ") + policy_name(o.policy) + " policy needs the signal backend";
    return false;
  }
  if (o.policy == Policy::pager && o.userfaultfd_mode == UserfaultfdMode::self_service) {
    *reason = "a pager region cannot be self-service";
    return false;
  }
  std::lock_guard lock(g_mutex);
  std::string async_why;
  const DirtyTracking tracking = resolve_locked(o, &async_why);
  std::string sync_why;
  if (o.backend == Backend::automatic && o.dirty_tracking == DirtyTracking::automatic && !async_why.empty() &&
      fd_locked(Kind::handler, &sync_why) >= 0) {
    // Without WP_ASYNC, mprotect tracking (the signal backend) is the faster one: synchronous
    // write-protect measured 8-40x slower per write in `faultline bench`'s dirty rows.
    *reason = "dirty tracking: no asynchronous write-protect (" + async_why +
              "), and mprotect is faster than synchronous write-protect";
    return false;
  }
  const Kind kind = kind_of(o.policy, tracking, o.userfaultfd_mode);
  if (kind == Kind::wp_async ? !async_wp_locked(reason) : fd_locked(kind, reason) < 0) return false;
  std::string cache_why;
  const bool cache = shmem_cache_locked(o, &cache_why);
  if (o.fill_path == FillPath::shmem_cache && !cache) {
    *reason = "FillPath::shmem_cache: " + cache_why;
    return false;
  }
  *reason = kind == Kind::wp_async                ? "userfaultfd (WP_ASYNC + PAGEMAP_SCAN)"
            : o.policy == Policy::track_dirty     ? "userfaultfd (synchronous write-protect)"
            : kind == Kind::sigbus                ? "userfaultfd (self-service SIGBUS)"
                                                  : "userfaultfd (handler thread)";
  if (!async_why.empty()) reason->insert(reason->size() - 1, "; not asynchronous: " + async_why);
  *shmem_cache = cache;
  if (cache) {
    reason->insert(reason->size() - 1, kCached);
  } else if (!cache_why.empty()) {
    reason->insert(reason->size() - 1, std::string(kCopied) + cache_why);
  }
  if (g_fds[static_cast<int>(kind)].user_mode_only) {
    reason->insert(reason->size() - 1, "; user-mode faults only (vm.unprivileged_userfaultfd is 0): a system "
                                       "call that meets a missing page fails with EFAULT");
  }
  return true;
}

namespace {

// "HugePages_Free:  N" from /proc/meminfo (hugetlbfs pages of the default size), or -1.
long hugetlb_pages_free() {
  long n = -1;
  if (FILE* f = std::fopen("/proc/meminfo", "r")) {
    char line[128];
    while (std::fgets(line, sizeof line, f) != nullptr) {
      if (std::sscanf(line, "HugePages_Free: %ld", &n) == 1) break;
    }
    std::fclose(f);
  }
  return n;
}

}  // namespace

Result<std::unique_ptr<detail::RegionImpl>> create(std::size_t size, const RegionOptions& o, bool shmem_cache,
                                                    const std::string& reason) {
  // Private anonymous memory with the region's own protection; missing pages reach userfaultfd.
  // huge_pages: hugetlbfs pages of 2 MiB, reserved now (no MAP_NORESERVE), so that a fault can never
  // find the pool empty.
  const int flags = o.huge_pages ? MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (21 << MAP_HUGE_SHIFT)
                                 : MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
  const long p = os::raw_mmap(nullptr, size, region::prot_of(o.perms), flags, -1, 0);
  if (os::is_err(p) && o.huge_pages) {
    const long free_pages = hugetlb_pages_free();
    return Error(Errc::unsupported,
                 "region '" + o.name + "': huge_pages on userfaultfd needs " + std::to_string(size / core::kHugePage) +
                     " hugetlbfs pages of 2 MiB, and mmap(MAP_HUGETLB) failed with " + strerrorname_np(static_cast<int>(-p)) +
                     (free_pages >= 0 ? " (HugePages_Free in /proc/meminfo: " + std::to_string(free_pages) + ")" : "") +
                     "; reserve them with /proc/sys/vm/nr_hugepages, or use the signal backend's transparent huge pages");
  }
  if (os::is_err(p)) return Error::from_errno("mmap (reserve_region)", static_cast<int>(-p));
  auto r = std::make_unique<UffdRegion>(o, static_cast<std::uintptr_t>(p), size);
  if (o.huge_pages) r->huge = core::kHugePage;
  r->backend_reason = reason;
  if (shmem_cache) {
    bool range_lost = false;
    if (auto c = map_cache(*r, o, &range_lost); !c) {
      // FillPath::automatic copies instead, saying why, unless the region's range itself may be gone;
      // asked for by name, the cache's failure is the region's.
      if (o.fill_path == FillPath::shmem_cache || range_lost) {
        r.reset();  // its destructor lets go of what map_cache made; the anonymous range is unmapped here
        os::raw_munmap(reinterpret_cast<void*>(p), size);
        return c.error();
      }
      if (const auto at = r->backend_reason.find(kCached); at != std::string::npos) {
        r->backend_reason.replace(at, kCached.size(), std::string(kCopied) + c.error().message());
      }
    }
  }
  return std::unique_ptr<detail::RegionImpl>(std::move(r));
}

Result<void> UffdRegion::attach() {
  if (remote_sock >= 0) {
    failed = detail::PageBits(pages());
    return attach_remote(*this, remote_sock);
  }
  if (watermark != nullptr) {
    if (auto e = start_evictor(); !e) return e;
  }
  const bool sync_wp = policy == Policy::track_dirty && tracking == DirtyTracking::sync_wp;
  const Kind k = kind();
  if (sync_wp) {
    // Without WP_UNPOPULATED on this fd, only present pages can be write-protected: populate first.
    if (const long rc = os::raw_madvise(reinterpret_cast<void*>(base), end - base, MADV_POPULATE_WRITE); os::is_err(rc)) {
      return Error::from_errno("madvise MADV_POPULATE_WRITE (synchronous write tracking)", static_cast<int>(-rc));
    }
  }
  std::string why;
  const int ufd = fd_for(k, &why);
  {
    std::lock_guard lock(g_mutex);
    unmap_events = ufd >= 0 && g_fds[static_cast<int>(k)].unmap_events;
  }
  if (ufd < 0) return Error(Errc::unsupported, "region '" + std::string(name) + "': userfaultfd: " + why);
  std::uint64_t mode_bits = policy == Policy::track_dirty ? UFFDIO_REGISTER_MODE_WP : UFFDIO_REGISTER_MODE_MISSING;
  // Write-back: filled pages are installed write-protected; their first write is a fault that marks them.
  if (write_back_enabled) mode_bits |= UFFDIO_REGISTER_MODE_WP;
  if (cached()) mode_bits |= UFFDIO_REGISTER_MODE_MINOR;  // pages in the cache, not yet in the region
  if (sync_wp || write_back_enabled) dirty = detail::PageBits(pages());
  // Duplicate messages: self-service never sees any; a cached region's UFFDIO_CONTINUE stops at a page
  // mapped already.
  if (k == Kind::handler && !sync_wp && !cached()) filled = detail::PageBits(pages());
  failed = detail::PageBits(pages());
  if (const long rc = os::uffd_register(ufd, base, end - base, mode_bits); os::is_err(rc)) {
    return Error::from_errno("UFFDIO_REGISTER", static_cast<int>(-rc));
  }
  fd = ufd;
  if (k == Kind::handler) {
    // The handler thread starts with the first region that needs it (not when probing), so that a
    // process that only asks whether userfaultfd works stays single-threaded.
    if (auto h = start_handler(ufd); !h) {
      os::uffd_unregister(ufd, base, end - base);
      fd = -1;
      return h;
    }
  }
  if (policy == Policy::pager) watch_pager(pager);
  if (policy == Policy::track_dirty) {
    if (const long rc = os::uffd_writeprotect(ufd, base, end - base, true); os::is_err(rc)) {
      os::uffd_unregister(ufd, base, end - base);
      fd = -1;
      return Error::from_errno("UFFDIO_WRITEPROTECT", static_cast<int>(-rc));
    }
  }
  return {};
}

void UffdRegion::release_helpers() noexcept {
  if (!inherited.load(std::memory_order_acquire)) stop_remote(*this);  // a child must not stop the parent's
}

void UffdRegion::detach() noexcept {
  if (inherited.load(std::memory_order_acquire)) {  // the child's own fd, if it got one
    if (fd >= 0) os::raw_close(fd);
    fd = -1;
    return;
  }
  // Accesses that race the teardown must fault, not read zeros: a thread the unregistration wakes
  // retries its access, and an unregistered missing page would be a fresh zero page.
  os::raw_mprotect(reinterpret_cast<void*>(base), end - base, PROT_NONE);
  // Unregistering wakes any thread still waiting, and takes the range out of the userfaultfd. A remote
  // pager's region needs it as much as the others: its userfaultfd has UNMAP events, which only the
  // watchdog read, and the pager process holds a copy of it, so closing ours would not end the
  // registration: with the range still registered, the munmap would wait for a reader for ever.
  if (fd >= 0) os::uffd_unregister(fd, base, end - base);
  if (remote_stop >= 0 && fd >= 0) {
    os::raw_close(fd);  // the pager's copy is the pager's business: it sees no more faults from us
    fd = -1;
  }
}

bool UffdRegion::memory_is_ours() const noexcept {
  monitor::settle();
  if (unmapped_seen.load(std::memory_order_acquire)) return false;
  // An fd whose UNMAP events are read (the handler thread's, the remote watchdog's, and the others while
  // the unmap monitor runs) reports every unmapping of the range; otherwise what the kernel shows decides.
  if (unmap_events && !inherited.load(std::memory_order_acquire)) return true;
  return os::range_matches(base, end, cache_inode);
}

void UffdRegion::unmap() noexcept { os::raw_munmap(reinterpret_cast<void*>(base), end - base); }

Result<void> UffdRegion::collect_dirty(std::vector<std::size_t>& out, ProtectBatch*) {
  const std::size_t page = core::page_size();
  if (tracking == DirtyTracking::async_wp) {
    // Harvest and re-arm in one ioctl per 512 runs of written pages (a PAGEMAP_SCAN call costs a walk
    // from where the last one stopped: scattered writes make many runs); nothing to defer.
    constexpr std::size_t kRuns = 512;
    thread_local std::unique_ptr<struct page_region[]> regions;
    if (!regions) regions.reset(new struct page_region[kRuns]);
    std::uintptr_t start = base;
    while (start < end) {
      struct pm_scan_arg arg = pagemap_scan_arg(start, end, regions.get(), kRuns, PAGE_IS_WRITTEN,
                                                PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC);
      const long n = os::pagemap_scan(pagemap_fd(), &arg);
      if (os::is_err(n)) return Error::from_errno("PAGEMAP_SCAN", static_cast<int>(-n));
      for (long i = 0; i < n; ++i) {
        for (std::uintptr_t a = regions[i].start; a < regions[i].end; a += page) out.push_back((a - base) / page);
      }
      if (arg.walk_end <= start) break;
      start = arg.walk_end;
    }
    return {};
  }
  // Synchronous write-protect: take the marks, then re-arm each run.
  const std::size_t first_new = out.size();
  dirty.take_all(out);
  for (std::size_t i = first_new; i < out.size();) {
    std::size_t j = i + 1;
    while (j < out.size() && out[j] == out[j - 1] + 1) ++j;
    if (const long rc = os::uffd_writeprotect(fd, base + out[i] * page, (j - i) * page, true); os::is_err(rc)) {
      return Error::from_errno("UFFDIO_WRITEPROTECT (collect_dirty)", static_cast<int>(-rc));
    }
    i = j;
  }
  return {};
}

Result<void> UffdRegion::protect(std::size_t, std::size_t, unsigned) {
  return Error(Errc::unsupported, std::string("protect: region '") + name +
                                      "' is served by userfaultfd; protection changes need the signal backend");
}

Result<void> UffdRegion::discard(std::size_t first, std::size_t count) {
  const std::size_t page = core::page_size();
  if (huge != 0 && ((first * page) % huge != 0 || (count * page) % huge != 0)) {
    return Error(Errc::invalid_argument, "Region::discard: a region of 2 MiB pages drops whole huge pages (" +
                                             std::to_string(huge / page) + " pages at a time, aligned)");
  }
  void* view = reinterpret_cast<void*>(base + first * page);
  const std::size_t len = count * page;
  // Dropped pages are missing again: the next access faults to userfaultfd (and a poisoned page is
  // cleared). Dirty tracking is re-armed on the fresh pages.
  // A cached region drops the cache's copies first: once the region's own are gone, a minor fault must
  // not find the old ones (the store may hold newer contents, stored by write-back).
  if (cached()) {
    if (auto d = drop_cached(first, count); !d) return d;
  }
  if (!filled.empty()) filled.clear_range(first, count);
  if (!failed.empty()) failed.clear_range(first, count);
  if (write_back_enabled) {  // see UffdRegion::dropped; not held across madvise, whose REMOVE event the
    lock_install();          // handler thread (which may be filling) must read before it returns
    dropped.fetch_add(1, std::memory_order_acq_rel);
    unlock_install();
  }
  if (const long rc = os::raw_madvise(view, len, MADV_DONTNEED); os::is_err(rc)) {
    return Error::from_errno("madvise (Region::discard)", static_cast<int>(-rc));
  }
  if (!dirty.empty()) dirty.clear_range(first, count);
  if (policy == Policy::track_dirty) {
    // Synchronous write-protect can only protect present pages.
    if (tracking == DirtyTracking::sync_wp) os::raw_madvise(view, len, MADV_POPULATE_WRITE);
    if (const long rc = os::uffd_writeprotect(fd, reinterpret_cast<std::uintptr_t>(view), len, true); os::is_err(rc)) {
      return Error::from_errno("UFFDIO_WRITEPROTECT (Region::discard)", static_cast<int>(-rc));
    }
  }
  set_failure("");
  return {};
}

Result<std::size_t> UffdRegion::write_back(std::size_t first, std::size_t count) {
  // The store reads the pages from the region itself: no eviction may drop them meanwhile.
  std::lock_guard one(evict_mutex);
  return write_back_locked(first, count);
}

Result<std::size_t> UffdRegion::write_back_locked(std::size_t first, std::size_t count) {
  // Take the dirty marks, write-protect each run again (so a write during the store is recorded anew),
  // then hand all the runs to the store in one batch.
  const std::size_t page = core::page_size();
  std::vector<std::size_t> taken;
  for (std::size_t i = first; i < first + count; ++i) {
    if (dirty.take(i)) taken.push_back(i);
  }
  std::vector<WriteBackRequest> runs;
  std::vector<std::pair<std::size_t, std::size_t>> run_pages;  // (index in taken, pages)
  for (std::size_t a = 0; a < taken.size();) {
    std::size_t b = a + 1;
    while (b < taken.size() && taken[b] == taken[b - 1] + 1) ++b;
    const std::uintptr_t addr = base + taken[a] * page;
    const std::size_t len = (b - a) * page;
    // EAGAIN: the address space was changing under the call (a concurrent fault, madvise or fill); the
    // kernel asks for a retry.
    long rc = os::uffd_writeprotect(fd, addr, len, true);
    for (int tries = 0; rc == -EAGAIN && tries < 10000; ++tries) {
      sched_yield();
      rc = os::uffd_writeprotect(fd, addr, len, true);
    }
    if (os::is_err(rc)) {
      for (std::size_t k = a; k < taken.size(); ++k) dirty.set(taken[k]);  // not stored: still dirty
      for (const auto& [at, n] : run_pages) {
        for (std::size_t k = 0; k < n; ++k) dirty.set(taken[at + k]);
      }
      return Error::from_errno("UFFDIO_WRITEPROTECT (flush)", static_cast<int>(-rc));
    }
    runs.push_back(WriteBackRequest{info(), taken[a] * page, len, reinterpret_cast<const std::byte*>(addr)});
    run_pages.emplace_back(a, b - a);
    a = b;
  }
  if (runs.empty()) return std::size_t{0};
  std::size_t stored = 0;
  FillStatus st;
  try {
    st = store->write_back(runs.data(), runs.size(), &stored);
  } catch (...) {
    st = FillStatus{EIO, "the store's write_back threw an exception"};
  }
  std::size_t written = 0;
  for (std::size_t i = 0; i < stored && i < run_pages.size(); ++i) written += run_pages[i].second;
  counters.note_written_back(written);
  // A cached region's written pages are private copies beside their cache pages, which are stale now:
  // drop those (best effort: their pages are marked unfilled either way, so a page the program drops
  // itself is filled from the store again, never mapped from the stale cache page).
  if (cached()) {
    for (std::size_t i = 0; i < stored && i < run_pages.size(); ++i) {
      (void)drop_cached(taken[run_pages[i].first], run_pages[i].second);
    }
  }
  if (st.error == 0) return written;
  for (std::size_t i = stored; i < run_pages.size(); ++i) {  // not stored: still dirty
    for (std::size_t k = 0; k < run_pages[i].second; ++k) dirty.set(taken[run_pages[i].first + k]);
  }
  const std::size_t failed_page = stored < run_pages.size() ? taken[run_pages[stored].first] : first;
  return Error(Errc::system_error, std::string("flush: region '") + name + "': the write-back of page " +
                                       std::to_string(failed_page) + " failed: " + std::strerror(st.error) +
                                       (st.reason != nullptr ? std::string(" (") + st.reason + ")" : ""));
}

Result<std::size_t> UffdRegion::evict(std::size_t first, std::size_t count) {
  if (!write_back_enabled) return RegionImpl::evict(first, count);
  std::lock_guard one(evict_mutex);
  std::size_t written = 0;
  constexpr std::size_t kPiece = (1u << 24) - 1;  // what `evicting` can hold
  for (std::size_t at = first; at < first + count; at += kPiece) {
    const std::size_t n = first + count - at < kPiece ? first + count - at : kPiece;
    {
      // From here on the handler thread lets no write to the range through (write_back() protects the
      // dirty pages again; the clean ones are protected since their fill).
      std::lock_guard wp(wp_mutex);
      evicting.store((static_cast<std::uint64_t>(at) + 1) << 24 | n, std::memory_order_release);
    }
    auto w = write_back_locked(at, n);
    Result<void> d;
    if (w) d = discard(at, n);
    {
      std::lock_guard wp(wp_mutex);
      evicting.store(0, std::memory_order_release);
    }
    // The writers held back: the page is gone (they fault it in again) or, after a failure, still
    // protected (they fault again, and are let through now).
    os::uffd_wake(fd, base + at * core::page_size(), n * core::page_size());
    if (!w) return w;
    if (!d) return d.error();
    counters.note_evicted(n);
    written += *w;
  }
  return written;
}

void UffdRegion::serve(detail::PagerImpl& p, detail::PagerSlot& slot) {
  // A detached request from the handler thread: fill a buffer of this thread's, copy it in (or fail the
  // page). The read-ahead window is decided here (fill()); the request names the page.
  thread_local std::vector<std::byte> buffer;
  int err = 0;
  try {
    if (buffer.size() < slot.req.length) buffer.resize(slot.req.length);
    std::size_t n = 0;
    err = fill(base + slot.req.offset, slot.req.access, slot.req.pc, slot.req.tid, buffer.data(), buffer.size(), &n,
               store_fill_catching);
    if (n != 0) note_filled(*this, base + slot.req.offset, n);
  } catch (...) {
    fail_page(base + slot.req.offset, EIO, "the pager's fill threw an exception", slot.req.tid);
    err = EIO;
  }
  pager::complete(p, slot, FillStatus{err, nullptr});
}

}  // namespace faultline::backend::uffd

namespace faultline {

Result<void> userfaultfd_available() {
  return core::guarded([&]() -> Result<void> {
    // A probe of its own (opened and closed here): no cached fd, no handler thread.
    std::string why;
    const int fd = backend::uffd::probe(&why);
    if (fd < 0) return Error(Errc::unsupported, "userfaultfd: " + why);
    close(fd);
    return {};
  });
}

}  // namespace faultline
