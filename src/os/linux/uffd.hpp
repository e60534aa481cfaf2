// os/linux/uffd.hpp: every userfaultfd system call and the PAGEMAP_SCAN ioctl, through the raw-syscall
// layer (signal path: the self-service SIGBUS handler and the handler thread use them). Nothing else in
// faultline opens a userfaultfd or issues one of these ioctls. Each returns a non-negative result or
// -errno, never touches errno, never allocates.
#pragma once

#include <fcntl.h>
#include <cerrno>
#include <linux/userfaultfd.h>

#include <cstddef>
#include <cstdint>

#include "os/linux/syscall.hpp"
#include "linux_uapi.hpp"

namespace faultline::os {

// Opens a userfaultfd (O_CLOEXEC | O_NONBLOCK | extra_flags): the userfaultfd(2) system call, and when
// that is refused, /dev/userfaultfd's USERFAULTFD_IOC_NEW; when both are refused for want of privilege
// (vm.unprivileged_userfaultfd = 0, no CAP_SYS_PTRACE, no access to the device), one for user-mode faults
// only (UFFD_USER_MODE_ONLY, Linux 5.11: a system call that meets a missing page fails with EFAULT), and
// *user_mode_only (if given) says so. Returns the fd, or -errno of the system call; *dev_err (if given)
// gets 0 or -errno of the /dev/userfaultfd attempt.
inline long uffd_open(int extra_flags = 0, long* dev_err = nullptr, bool* user_mode_only = nullptr) noexcept {
  const int flags = O_CLOEXEC | O_NONBLOCK | extra_flags;
  if (user_mode_only != nullptr) *user_mode_only = (extra_flags & UFFD_USER_MODE_ONLY) != 0;
  const long fd = raw_syscall(SYS_userfaultfd, flags);
  if (dev_err != nullptr) *dev_err = 0;
  if (!is_err(fd)) return fd;
  long dev = raw_open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
  if (!is_err(dev)) {
    const long nfd = raw_syscall(SYS_ioctl, dev, static_cast<long>(USERFAULTFD_IOC_NEW), flags);
    raw_close(static_cast<int>(dev));
    if (!is_err(nfd)) return nfd;
    dev = nfd;
  }
  if (dev_err != nullptr) *dev_err = dev;
  if (fd == -EPERM && (extra_flags & UFFD_USER_MODE_ONLY) == 0) {
    const long umo = raw_syscall(SYS_userfaultfd, flags | UFFD_USER_MODE_ONLY);
    if (!is_err(umo)) {
      if (user_mode_only != nullptr) *user_mode_only = true;
      return umo;
    }
  }
  return fd;
}

// The UFFDIO_API handshake asking for `features` (0: the kernel answers with every feature it has).
// On success *got_features / *got_ioctls (if given) say what the fd offers.
inline long uffd_api(int fd, std::uint64_t features, std::uint64_t* got_features = nullptr,
                     std::uint64_t* got_ioctls = nullptr) noexcept {
  struct uffdio_api api{};
  api.api = UFFD_API;
  api.features = features;
  const long rc = raw_ioctl(fd, UFFDIO_API, &api);
  if (!is_err(rc)) {
    if (got_features != nullptr) *got_features = api.features;
    if (got_ioctls != nullptr) *got_ioctls = api.ioctls;
  }
  return rc;
}

// Result of uffd_open_with: the fd or -errno, and why when it failed.
struct UffdOpened {
  long fd = -1;                 // the fd, or -errno of the step that failed
  long dev_err = 0;             // 0, or -errno of the /dev/userfaultfd attempt
  bool user_mode_only = false;  // opened with UFFD_USER_MODE_ONLY (see uffd_open)
  bool in_api = false;          // the failure was UFFDIO_API's (fd is its -errno)
  std::uint64_t missing = 0;    // required features the kernel does not offer (fd is -EOPNOTSUPP)
  std::uint64_t features = 0;   // the features the fd was opened with (required, and the optional ones offered)
};

// Opens a userfaultfd (uffd_open) with the `required` features and whatever of `optional` the kernel
// offers. UFFDIO_API runs once per fd, so the offer is asked of a first fd, closed, and the features
// requested on a second. Every userfaultfd faultline keeps is opened this way. Async-signal-safe (a
// forked child's own fd is opened with it).
inline UffdOpened uffd_open_with(std::uint64_t required, std::uint64_t optional) noexcept {
  UffdOpened r;
  long fd = uffd_open(0, &r.dev_err, &r.user_mode_only);
  std::uint64_t offered = 0;
  long rc = is_err(fd) ? fd : uffd_api(static_cast<int>(fd), 0, &offered);
  if (!is_err(fd)) raw_close(static_cast<int>(fd));
  if (is_err(rc)) {
    r.fd = rc;
    r.in_api = !is_err(fd);
    return r;
  }
  if ((r.missing = required & ~offered) != 0) {
    r.fd = -EOPNOTSUPP;
    return r;
  }
  fd = uffd_open(0, &r.dev_err, &r.user_mode_only);
  if (is_err(fd)) {
    r.fd = fd;
    return r;
  }
  r.features = required | (optional & offered);
  if (rc = uffd_api(static_cast<int>(fd), r.features); is_err(rc)) {
    raw_close(static_cast<int>(fd));
    r.fd = rc;
    r.in_api = true;
    return r;
  }
  r.fd = fd;
  return r;
}

// Registers [start, start + len) with `mode` (UFFDIO_REGISTER_MODE_*).
inline long uffd_register(int fd, std::uintptr_t start, std::size_t len, std::uint64_t mode,
                          std::uint64_t* ioctls = nullptr) noexcept {
  struct uffdio_register reg{};
  reg.range.start = start;
  reg.range.len = len;
  reg.mode = mode;
  const long rc = raw_ioctl(fd, UFFDIO_REGISTER, &reg);
  if (!is_err(rc) && ioctls != nullptr) *ioctls = reg.ioctls;
  return rc;
}

// Unregisters (wakes any thread still waiting in the range).
inline long uffd_unregister(int fd, std::uintptr_t start, std::size_t len) noexcept {
  struct uffdio_range range{start, len};
  return raw_ioctl(fd, UFFDIO_UNREGISTER, &range);
}

// Zero-fills [addr, addr + len). On -EEXIST, *done says how many bytes were filled before a page that
// already existed. `wake` false: the caller wakes the waiters itself.
inline long uffd_zeropage(int fd, std::uintptr_t addr, std::size_t len, std::size_t* done, bool wake = true) noexcept {
  struct uffdio_zeropage z{};
  z.range.start = addr;
  z.range.len = len;
  z.mode = wake ? 0 : UFFDIO_ZEROPAGE_MODE_DONTWAKE;
  const long rc = raw_ioctl(fd, UFFDIO_ZEROPAGE, &z);
  if (done != nullptr) *done = z.zeropage > 0 ? static_cast<std::size_t>(z.zeropage) : 0;
  return rc;
}

// Copies `len` bytes from `src` into the missing pages at `dst`.
// `write_protect`: install the pages write-protected (UFFDIO_COPY_MODE_WP), so that the first write to
// each is a write-protect fault (dirty tracking of filled pages).
inline long uffd_copy(int fd, std::uintptr_t dst, const void* src, std::size_t len, std::size_t* done,
                      bool wake = true, bool write_protect = false) noexcept {
  struct uffdio_copy c{};
  c.dst = dst;
  c.src = reinterpret_cast<std::uintptr_t>(src);
  c.len = len;
  c.mode = (wake ? 0 : UFFDIO_COPY_MODE_DONTWAKE) | (write_protect ? UFFDIO_COPY_MODE_WP : 0);
  const long rc = raw_ioctl(fd, UFFDIO_COPY, &c);
  if (done != nullptr) *done = c.copy > 0 ? static_cast<std::size_t>(c.copy) : 0;
  return rc;
}

// Maps the pages of [addr, addr + len) that a shmem (or hugetlbfs) mapping's page cache holds already
// (a region registered with UFFDIO_REGISTER_MODE_MINOR). On -EEXIST, *done says how many bytes were
// mapped before a page that was mapped already; -EFAULT: a page is not in the cache. `write_protect`:
// map them write-protected (UFFDIO_CONTINUE_MODE_WP).
inline long uffd_continue(int fd, std::uintptr_t addr, std::size_t len, std::size_t* done, bool write_protect = false) noexcept {
  struct uffdio_continue c{};
  c.range.start = addr;
  c.range.len = len;
  c.mode = write_protect ? UFFDIO_CONTINUE_MODE_WP : 0;
  const long rc = raw_ioctl(fd, UFFDIO_CONTINUE, &c);
  if (done != nullptr) *done = c.mapped > 0 ? static_cast<std::size_t>(c.mapped) : 0;
  return rc;
}

// Marks missing pages poisoned: an access raises SIGBUS (BUS_MCEERR_AR).
inline long uffd_poison(int fd, std::uintptr_t addr, std::size_t len) noexcept {
  struct uffdio_poison p{};
  p.range.start = addr;
  p.range.len = len;
  return raw_ioctl(fd, UFFDIO_POISON, &p);
}

inline long uffd_wake(int fd, std::uintptr_t addr, std::size_t len) noexcept {
  struct uffdio_range r{addr, len};
  return raw_ioctl(fd, UFFDIO_WAKE, &r);
}

inline long uffd_writeprotect(int fd, std::uintptr_t addr, std::size_t len, bool protect) noexcept {
  struct uffdio_writeprotect w{};
  w.range.start = addr;
  w.range.len = len;
  w.mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0;
  return raw_ioctl(fd, UFFDIO_WRITEPROTECT, &w);
}

// PAGEMAP_SCAN on an open /proc/<pid>/pagemap: returns the number of page_region entries written, or
// -errno (-ENOTTY: the kernel has no PAGEMAP_SCAN).
inline long pagemap_scan(int pagemap_fd, struct pm_scan_arg* arg) noexcept {
  return raw_ioctl(pagemap_fd, PAGEMAP_SCAN, arg);
}

}  // namespace faultline::os
