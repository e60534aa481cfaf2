// faultline/backend.hpp: how a region's faults reach faultline: signals or userfaultfd.
//
//   faultline::RegionOptions o;
//   o.backend = faultline::Backend::automatic;            // the default
//   auto r = faultline::reserve_region(64 << 20, o).value();
//   std::printf("%s: %s\n", faultline::backend_name(r.backend()), r.backend_reason());
//
// The signal backend serves every policy with mprotect and SIGSEGV: it works everywhere, on any memory.
// The userfaultfd backend serves zero_fill, provider, pager and track_dirty regions that faultline maps
// itself, without mprotect:
//   - missing pages are read by faultline's handler thread (in batches) and filled a window at a time
//     (read-ahead: sequential faults double the window up to RegionOptions::readahead_max pages, random
//     ones halve it); or, in self-service mode (UserfaultfdMode::self_service, UFFD_FEATURE_SIGBUS), by
//     the faulting thread itself in its SIGBUS handler (zero_fill and provider with an
//     async-signal-safe store, up to 4 pages per fill; a system call that touches a missing page of such
//     a region fails with EFAULT, as the kernel cannot raise the signal for it);
//   - a failed fill poisons the page (UFFDIO_POISON, Linux 6.6; before it, faultline remembers the page
//     and queues SIGBUS to the faulting thread): the faulting thread gets SIGBUS and the report names the
//     region and the cause; the page stays failed until Region::discard();
//   - track_dirty: asynchronous write-protection (WP_ASYNC, Linux 6.7): the kernel records the first write
//     to each page and collect_dirty() harvests and re-arms with one PAGEMAP_SCAN ioctl; with
//     DirtyTracking::sync_wp, synchronous write-protect faults that the handler thread records (slower
//     than mprotect tracking, which Backend::automatic picks on kernels without WP_ASYNC);
//   - write-back (RegionOptions::write_back), flush(), evict() and the resident-page watermark
//     (RegionOptions::max_resident_pages) are offered on this backend only.
// Backend::automatic picks userfaultfd when the kernel offers what the policy needs and signals
// otherwise (guard and barrier regions, adopted memory, no userfaultfd: ENOSYS, EPERM from
// vm.unprivileged_userfaultfd or seccomp, a missing feature); Region::backend_reason() says why.
//
// Thread-safety: every call is thread-safe. backend_name() is async-signal-safe; the rest is not.
#pragma once

#include <cstdint>

#include "faultline/result.hpp"

namespace faultline {

enum class Backend : std::uint8_t { automatic, signals, userfaultfd };
// "automatic", "signals", "userfaultfd"; "?" for anything else. Async-signal-safe.
const char* backend_name(Backend b) noexcept;

// How a userfaultfd track_dirty region learns about writes.
enum class DirtyTracking : std::uint8_t {
  automatic,  // async_wp when the kernel has WP_ASYNC and PAGEMAP_SCAN (Linux 6.7); otherwise, with
              // Backend::automatic, the signal backend's mprotect tracking (faster than sync_wp, as
              // `faultline bench` measures), and with Backend::userfaultfd, sync_wp
  async_wp,  // UFFD_FEATURE_WP_ASYNC: the kernel records writes, no fault reaches user space
  sync_wp,   // synchronous write-protect: the first write to a page is a fault the handler thread
             // records before it lifts the protection (kernels without WP_ASYNC)
};

// How a userfaultfd region's missing pages are filled.
enum class UserfaultfdMode : std::uint8_t {
  handler_thread,  // faultline's handler thread reads the faults and fills them
  self_service,    // the faulting thread fills its own fault in a SIGBUS handler, through a 16 KiB
                   // buffer on its alternate stack: faulting threads must be attached (a thread with a
                   // smaller alternate stack of its own has the access end in SIGBUS, saying so)
};

// Where a userfaultfd provider region's filled pages live, handler-thread mode (RegionOptions::fill_path).
enum class FillPath : std::uint8_t {
  automatic,    // shmem_cache for a store that fills by fd (Store::fills_by_fd: the file store) where
                // the kernel has what it needs, copy otherwise (backend_reason() says which, and why
                // not the cache)
  copy,         // the store fills a buffer of the handler thread's, and UFFDIO_COPY copies it into a
                // private page: two copies a page
  shmem_cache,  // the store fills the page's home in a shmem cache (a memfd) in place, and the faulting
                // thread's mapping of it (private: writes stay the program's) gets it by UFFDIO_CONTINUE
                // (a minor fault): one copy a page (the file store splices into it). Needs MINOR_SHMEM
                // (Linux 5.14), and for write-back WP_HUGETLBFS_SHMEM (5.19) and UFFDIO_CONTINUE_MODE_WP
                // (6.4, probed); Errc::unsupported without them when asked for by name. Fills of one
                // region are serialised: a store must not wait for a fault in its own region. A page
                // the program writes is a private copy beside its cache page until flush() (which drops
                // the cache page) or a discard. Not for pager regions, self-service, huge pages or
                // executable regions (a memfd may be mapped noexec).
};
// "automatic", "copy", "shmem_cache"; "?" for anything else. Async-signal-safe.
const char* fill_path_name(FillPath p) noexcept;

// Whether this process can use userfaultfd, and if not why ("userfaultfd: EPERM (...)").
Result<void> userfaultfd_available();

// faultline's userfaultfd handler threads: each reads fault messages and fills them, so that faults of
// several threads (of different regions, or of one) are served in parallel instead of queueing behind
// the last fill. Default: the number of CPUs, at most 4, or FAULTLINE_HANDLER_THREADS (1..64) from the
// environment (ignored in setuid/setgid programs, as secure_getenv does). The threads start with the first userfaultfd
// region (handler-thread mode) and run until the process ends; set_userfaultfd_handler_threads(n)
// applies to threads not yet started (call it before the first such region; raising it later starts
// the extra threads with the next region; it never stops a running one). Errc::invalid_argument
// outside 1..64. userfaultfd_handler_threads() says how many are running. Thread-safe.
Result<void> set_userfaultfd_handler_threads(unsigned n);
unsigned userfaultfd_handler_threads() noexcept;

}  // namespace faultline
