// os/linux/uffd.hpp: userfaultfd ioctls through the raw-syscall layer (signal path: the self-service
// SIGBUS handler and the handler thread both use them). Each returns 0 or -errno.
#pragma once

#include <linux/userfaultfd.h>

#include <cstddef>
#include <cstdint>

#include "os/linux/syscall.hpp"
#include "os/linux/uapi.hpp"

namespace faultline::os {

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

}  // namespace faultline::os
