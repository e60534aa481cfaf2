// backend/uffd/fill_sig.cpp: filling missing pages of userfaultfd regions, failing a page, and the
// self-service SIGBUS path (signal path: the self-service handler runs it in the faulting thread; the
// handler and pager threads run it too).
//
// Read-ahead: a fault at the page right after the last window filled doubles the window (up to
// readahead_max pages); any other fault halves it (down to one page). Races between threads only make
// the window a little off; ZEROPAGE/COPY stop at the first page that already exists (-EEXIST with a
// partial count) and wake whoever waits on what they filled; when nothing was filled the faulting page
// already exists and its waiters are woken explicitly.
#include <fcntl.h>
#include <sys/mman.h>

#include <atomic>
#include <cerrno>

#include "backend/uffd/uffd.hpp"
#include "core/format.hpp"
#include "core/page.hpp"
#include "os/linux/syscall.hpp"
#include "os/linux/uffd.hpp"
#include "trap/dispatcher.hpp"

namespace faultline::backend::uffd {

namespace {

// A read-only anonymous mapping never written: every page reads as zero, and costs no memory.
constinit std::atomic<void*> g_zeros{nullptr};
constexpr std::size_t kZeroBytes = std::size_t{512} << 12;

const void* zero_source(std::size_t len) noexcept {
  void* z = g_zeros.load(std::memory_order_acquire);
  if (z == nullptr) {
    const long m = os::raw_mmap(nullptr, kZeroBytes, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (os::is_err(m)) return nullptr;
    void* expected = nullptr;
    if (!g_zeros.compare_exchange_strong(expected, reinterpret_cast<void*>(m))) {
      os::raw_munmap(reinterpret_cast<void*>(m), kZeroBytes);
    }
    z = g_zeros.load(std::memory_order_acquire);
  }
  return len <= kZeroBytes ? z : nullptr;
}

constinit std::atomic<int> g_pagemap_fd{-1};
constinit std::atomic<long> g_pagemap_pid{0};  // the process that opened it

// Whether the page at `addr` exists (present or swapped out), from /proc/self/pagemap (those two bits
// need no privilege). Unknown (the file cannot be read): false.
bool page_present(std::uintptr_t addr) noexcept {
  const int fd = pagemap_fd();
  if (fd < 0) return false;
  std::uint64_t entry = 0;
  const long n = os::raw_pread(fd, &entry, sizeof entry, static_cast<long>(addr / core::page_size() * sizeof entry));
  return n == static_cast<long>(sizeof entry) && (entry & (std::uint64_t{3} << 62)) != 0;
}

}  // namespace

int pagemap_fd() noexcept {
  int fd = g_pagemap_fd.load(std::memory_order_acquire);
  // The file is the opener's: a forked child drops its copy of the parent's and opens its own.
  if (fd >= 0 && g_pagemap_pid.load(std::memory_order_acquire) != os::raw_getpid()) {
    if (g_pagemap_fd.compare_exchange_strong(fd, -1)) os::raw_close(fd);
    fd = -1;
  }
  if (fd < 0) {
    g_pagemap_pid.store(os::raw_getpid(), std::memory_order_release);
    const long f = os::raw_open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (os::is_err(f)) return -1;
    int expected = -1;
    if (!g_pagemap_fd.compare_exchange_strong(expected, static_cast<int>(f))) os::raw_close(static_cast<int>(f));
    fd = g_pagemap_fd.load(std::memory_order_acquire);
  }
  return fd;
}

FillStatus store_fill(Store& store, const FillRequest& req) noexcept { return store.fill(req); }

void UffdRegion::fail_page(std::uintptr_t page_addr, int err, const char* reason, long tid) noexcept {
  // The reason first: the failed thread's report reads it. Counted only if a thread was failed: a
  // failed fill for a page that exists already (a second, stale message for a fault another fill
  // served) harms nobody.
  record_fill_failure((page_addr - base) / core::page_size(), err, reason);
  if (deliver_failure(page_addr, tid)) counters.note_failure();
}

bool UffdRegion::deliver_failure(std::uintptr_t page_addr, long tid) noexcept {
  const std::size_t page = core::page_size();
  const long rc = os::uffd_poison(fd, page_addr, page);
  if (rc != -EINVAL && rc != -ENOTTY) {  // poisoned (or the page exists already: its waiters are woken)
    if (os::is_err(rc)) os::uffd_wake(fd, page_addr, page);
    return rc != -EEXIST;
  }
  // No UFFDIO_POISON. A page that exists already (a second message for a fault that was served, as
  // UFFDIO_POISON's EEXIST says on newer kernels): its waiters are woken, nobody is failed.
  if (page_present(page_addr)) {
    os::uffd_wake(fd, page_addr, page);
    return false;
  }
  // Otherwise remember the page, and end the faulting thread's access with SIGBUS at the page (it is
  // blocked in the kernel: the signal interrupts the wait). With the default action it dies by SIGBUS;
  // faultline's handler reports the region and the cause first.
  if (!failed.empty()) failed.set((page_addr - base) / page);
  signal_thread(page_addr, tid);
  return true;
}

void UffdRegion::signal_thread(std::uintptr_t page_addr, long tid) noexcept {
  // The faulting thread itself (self-service) ends its access with fail_with_sigbus instead.
  if (tid > 0 && tid != os::raw_gettid()) {
    // The kernel accepts a kernel-looking si_code (BUS_ADRERR) only from the target's own process leader
    // thread, so it is queued as SI_QUEUE, with the page in si_addr: faultline's handler passes it straight
    // to the previous action (the report names the region and its last failure), as a signal a process
    // sent; with the default action the process dies by SIGBUS.
    siginfo_t si;
    __builtin_memset(&si, 0, sizeof si);
    si.si_signo = SIGBUS;
    si.si_code = SI_QUEUE;
    si.si_addr = reinterpret_cast<void*>(page_addr);
    os::raw_rt_tgsigqueueinfo(os::raw_getpid(), tid, SIGBUS, &si);
  }
  os::uffd_wake(fd, page_addr, core::page_size());
}

bool UffdRegion::failed_before(std::uintptr_t page_addr, long tid, bool speculative) noexcept {
  if (failed.empty() || !failed.test((page_addr - base) / core::page_size())) return false;
  if (!speculative) deliver_failure(page_addr, tid);
  return true;
}

std::size_t UffdRegion::window_at(std::uintptr_t page_addr, std::size_t limit, bool speculative) noexcept {
  const std::size_t page = core::page_size();
  std::size_t window = ra_window.load(std::memory_order_relaxed);
  if (page_addr == ra_next.load(std::memory_order_relaxed)) {
    window = window * 2 > readahead_max ? readahead_max : window * 2;
  } else {
    window = window / 2 > 0 ? window / 2 : 1;
    if (!speculative) ahead_windows.store(1, std::memory_order_relaxed);  // not a stream (any more)
  }
  std::size_t len = window * page;
  if (len > end - page_addr) len = end - page_addr;
  // Stop the window at the first page already filled (COPY would stop there anyway, after the fill).
  if (!child_served && !filled.empty()) {
    for (std::size_t k = page; k < len; k += page) {
      if (filled.test((page_addr + k - base) / page)) {
        len = k;
        break;
      }
    }
  }
  // A store that answers aligned runs in one request (Store::preferred_run_pages): end the window at
  // the next boundary, so that the windows after it start on one.
  if (policy != Policy::zero_fill && run_align > 1) {
    const std::size_t boundary = ((page_addr - base) / page / run_align + 1) * run_align * page;
    if (len > boundary - (page_addr - base)) len = boundary - (page_addr - base);
  }
  if (len > limit) len = limit - limit % page;
  if (len == 0) len = page;
  ra_window.store(static_cast<std::uint32_t>(window), std::memory_order_relaxed);
  ra_next.store(page_addr + len, std::memory_order_relaxed);
  return len;
}

int UffdRegion::fill(std::uintptr_t page_addr, Access access, std::uintptr_t pc, long tid, void* bounce,
                     std::size_t bounce_size, std::size_t* filled_pages, StoreCall call, bool speculative,
                     bool wake) noexcept {
  if (filled_pages != nullptr) *filled_pages = 0;
  const std::size_t page = core::page_size();
  if (failed_before(page_addr, tid, speculative)) return EIO;
  // Another message for a page already filled (two threads faulted on it): wake, do not fill twice.
  // Unless the page is in fact missing: its bit was set by a fill that finished (the thread it woke went
  // on) after a discard had already dropped the page. Believing the bit would wake the thread into the
  // same fault for ever.
  if (!child_served && !filled.empty() && filled.test((page_addr - base) / page)) {
    if (page_present(page_addr)) {
      os::uffd_wake(fd, page_addr, page);
      return 0;
    }
    filled.clear((page_addr - base) / page);
  }
  std::size_t len;
  if (huge != 0) {
    // hugetlbfs: one whole huge page, the only unit the kernel installs (the bounce buffer holds one).
    page_addr &= ~(huge - 1);
    len = huge;
    if (policy != Policy::zero_fill && bounce_size < huge) {
      fail_page(page_addr, EINVAL, "the fill buffer is smaller than one huge page", tid);
      return EINVAL;
    }
  } else {
    len = window_at(page_addr, policy != Policy::zero_fill ? bounce_size : ~std::size_t{0}, speculative);
  }

  std::size_t done = 0;
  long rc;
  const std::int64_t t0 = os::monotonic_ns();
  if (policy == Policy::zero_fill && access != Access::write && huge == 0) {
    rc = os::uffd_zeropage(fd, page_addr, len, &done, wake);  // reads: the shared zero page, no memory
  } else if (policy == Policy::zero_fill) {
    // Writes: ZEROPAGE would map the read-only zero page and every write would fault again to copy it;
    // copy zeros into private pages at once (from a mapping that was never written: all zero pages).
    // hugetlbfs has no UFFDIO_ZEROPAGE: reads copy zeros too.
    const void* zeros = zero_source(len);
    rc = zeros != nullptr ? os::uffd_copy(fd, page_addr, zeros, len, &done, wake)
                          : os::uffd_zeropage(fd, page_addr, len, &done, wake);
  } else {
    const FillRequest req{info(), page_addr - base, len, access, pc, tid, static_cast<std::byte*>(bounce)};
    const bool guard = write_back_enabled && !child_served;  // see UffdRegion::dropped
    const std::uint64_t dropped_before = guard ? dropped.load(std::memory_order_acquire) : 0;
    const FillStatus st = call(*store, req);
    if (st.error != 0) {
      const int err = st.error > 0 ? st.error : EIO;
      if (!speculative) fail_page(page_addr, err, st.reason, tid);
      return err;
    }
    // Installed write-protected when written pages are tracked for write-back (not in a forked child,
    // whose own fd tracks nothing).
    if (guard) {
      lock_install();
      if (dropped.load(std::memory_order_acquire) != dropped_before) {
        // Pages were dropped (and perhaps stored anew) while the store answered: what it returned may
        // be older than what the store holds now. Install nothing; the thread faults again.
        unlock_install();
        os::uffd_wake(fd, page_addr, page);
        return 0;
      }
    }
    rc = os::uffd_copy(fd, page_addr, bounce, len, &done, wake || guard, guard);
    if (guard) unlock_install();
  }
  if (!os::is_err(rc)) done = len;
  if (!child_served && !filled.empty()) {
    for (std::uintptr_t a = page_addr; a < page_addr + done; a += page) filled.set((a - base) / page);
  }
  if (filled_pages != nullptr) *filled_pages = done / page;
  if (done != 0) counters.note_fill(done / page, os::monotonic_ns() - t0, speculative);
  // The kernel could not install the faulting page itself, for a reason the thread cannot retry
  // (install_retried): fail it with the cause. Retrying would fault again for ever.
  const bool retry = install_retried(rc);
  if (os::is_err(rc) && done == 0 && !retry) {
    const int err = static_cast<int>(-rc);
    if (speculative) return err;
    fail_page(page_addr, err, policy == Policy::zero_fill ? "the kernel could not install a zero page"
                                                          : "the kernel could not install the filled page (UFFDIO_COPY)",
              tid);
    return err;
  }
  // Nothing filled (the page exists already, or the mm is changing): wake the waiters, who fault again
  // if they still need to.
  if (os::is_err(rc) && done == 0) os::uffd_wake(fd, page_addr, page);
  return 0;
}

namespace {

constexpr const char* kChildPager =
    "inherited across fork(): the pager's threads do not follow into a forked child, and this page was "
    "not filled before the fork";
constexpr const char* kChildStore =
    "inherited across fork(): the handler thread does not follow into a forked child, and this region's "
    "store cannot fill in a signal handler (it is not async-signal-safe)";
constexpr const char* kChildUnserved =
    "inherited across fork(): the child could not get a userfaultfd of its own to serve this region, so "
    "its pages are inaccessible in the child";

}  // namespace

void UffdRegion::after_fork_in_child() noexcept {
  // The parent's fd serves the parent's memory: an ioctl on it from here would act on the parent's
  // registration. The fd itself is closed by the module's own fork hook.
  fd = -1;
  remote_sock = -1;
  remote_stop = -1;
  // The parent's cache: the child lets go of its view and its copy of the fd, and fills privately. Its
  // own fd takes minor faults too, so that it never maps a cache page the parent is writing or drops:
  // a page the cache holds is filled from the store like a missing one.
  const bool was_cached = cache_on;
  cache_on = false;
  if (cache_view != nullptr) os::raw_munmap(cache_view, end - base);
  if (cache_fd >= 0) os::raw_close(cache_fd);
  cache_view = nullptr;
  cache_fd = -1;
  // zero_fill and track_dirty: a page missing in the child reads as zeros, which is their content.
  if (policy != Policy::provider && policy != Policy::pager) return;
  // The forked child's own fd: SIGBUS for its faults, POISON when the kernel has it.
  const std::uint64_t minor = was_cached ? UFFD_FEATURE_MINOR_SHMEM : 0;
  if (const os::UffdOpened o = os::uffd_open_with(UFFD_FEATURE_SIGBUS | minor, UFFD_FEATURE_POISON); !os::is_err(o.fd)) {
    const std::uint64_t modes = UFFDIO_REGISTER_MODE_MISSING | (was_cached ? UFFDIO_REGISTER_MODE_MINOR : 0);
    if (!os::is_err(os::uffd_register(static_cast<int>(o.fd), base, end - base, modes))) {
      fd = static_cast<int>(o.fd);
      mode = UserfaultfdMode::self_service;
      child_served = true;
      return;
    }
    os::raw_close(static_cast<int>(o.fd));
  }
  // Never a zero page: no access at all, each one failing with the cause.
  os::raw_mprotect(reinterpret_cast<void*>(base), end - base, PROT_NONE);
  child_unserved = true;
}

namespace {

// What a self-service fill needs below the handler's frame: the bounce buffer and room for the store's
// fill and the ioctls.
constexpr std::size_t kSelfServiceStack = 4 * 4096 + (std::size_t{16} << 10);

// Bytes left below this frame when the handler runs on the thread's alternate stack; "plenty" otherwise.
// An attached thread's answer costs no system call (trap::altstack_around).
[[gnu::noinline]] std::size_t altstack_left() noexcept {
  const auto here = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
  std::uintptr_t lo, hi;
  return trap::altstack_around(here, &lo, &hi) ? here - lo : ~std::size_t{0};
}

}  // namespace

Disposition UffdRegion::on_fault(FaultContext& ctx) noexcept {
  if (child_unserved) {  // a forked child that could not serve the region: fail every access, saying why
    trap::fail_with_sigbus(ctx, kChildUnserved);
    return Disposition::resolved;
  }
  // A SIGSEGV in a userfaultfd region is a permission violation; a SIGBUS is ours only for a
  // self-service region's missing page (BUS_ADRERR from UFFD_FEATURE_SIGBUS): a poisoned page
  // (BUS_MCEERR_AR) or any other SIGBUS goes on to the report.
  if (ctx.signal() != SIGBUS || mode != UserfaultfdMode::self_service || ctx.code() != BUS_ADRERR) {
    return Disposition::declined;
  }
  if (!permits(ctx.access())) return Disposition::declined;
  if (child_served && (policy == Policy::pager || !store->async_signal_safe())) {
    const std::uintptr_t page_addr = core::align_down(ctx.address(), core::page_size());
    fail_page(page_addr, EPERM, policy == Policy::pager ? kChildPager : kChildStore);
    char cause[160];
    copy_failure(cause, sizeof cause);
    trap::fail_with_sigbus(ctx, cause);
    return Disposition::resolved;
  }
  // Provider fills go through a buffer on this (alternate) stack: at most 4 pages at a time. A thread
  // that never attached may run this on a small alternate stack of its own (Rust's std gives 8-12 KiB):
  // the buffer and the fill would run off its end. End the access with the cause instead.
  if (const std::size_t left = altstack_left(); left < kSelfServiceStack) {
    char cause[200];
    core::Formatter f(cause, sizeof cause);
    f.put("a self-service fill needs ").udec(kSelfServiceStack).put(" bytes of the alternate signal stack; this thread's has ")
        .udec(left).put(" left (attach the thread to give it faultline's)");
    trap::fail_with_sigbus(ctx, f.c_str());
    return Disposition::resolved;
  }
  if (self_service_fill(ctx) != 0) {
    // Failed (and the page poisoned): end this access in SIGBUS now, with the cause, as the signal backend
    // does, rather than rely on the poisoned page alone.
    char cause[160];
    copy_failure(cause, sizeof cause);
    trap::fail_with_sigbus(ctx, cause);
  }
  return Disposition::resolved;
}

// Its own frame, so that on_fault's stays small until the room for this one has been checked (a
// compiler reserves a function's whole frame on entry).
int UffdRegion::self_service_fill(FaultContext& ctx) noexcept {
  alignas(64) unsigned char bounce[4 * 4096];
  return fill(core::align_down(ctx.address(), core::page_size()), ctx.access(), ctx.pc(), os::raw_gettid(), bounce,
              sizeof bounce, nullptr, store_fill);
}

void UffdRegion::describe_backend(core::Formatter& f) const noexcept { f.put(" backend userfaultfd"); }

}  // namespace faultline::backend::uffd
