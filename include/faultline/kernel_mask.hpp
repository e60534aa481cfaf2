// faultline/kernel_mask.hpp: making faultline behave exactly as it would on an older or more locked-down
// kernel, to see (and test) what a program loses there.
//
//   FAULTLINE_KERNEL=6.1 ./my_program            # as on Debian 12: no WP_ASYNC, PAGEMAP_SCAN, POISON, MOVE
//   FAULTLINE_KERNEL=5.15 faultline info         # as on Ubuntu 22.04 (or: faultline info --as 5.15)
//   FAULTLINE_KERNEL=none ctest                  # userfaultfd forbidden, as in many containers
//   FAULTLINE_KERNEL=WP_ASYNC,UFFDIO_POISON ...  # just these facilities hidden
//
//   faultline::kernel_mask::set("5.15").value();  // from a test; clear() ends it
//
// A mask hides kernel facilities (userfaultfd features and ioctls, the system call itself,
// /dev/userfaultfd, PAGEMAP_SCAN, MADV_POPULATE_*) at the one place every faultline system call passes,
// the raw-syscall layer: UFFDIO_API reports fewer features and refuses to enable hidden ones (EINVAL),
// UFFDIO_REGISTER reports fewer ioctls, a hidden ioctl fails as the old kernel fails it (EINVAL on a
// userfaultfd, ENOTTY for PAGEMAP_SCAN), the system call fails with EPERM, /dev/userfaultfd is missing
// (ENOENT). So no capability can see through it: faultline picks its fallbacks, and its reasons name
// what is missing, as on that kernel. It does not change what the kernel does for anyone else, and the
// program's own system calls (not faultline's) are not masked.
//
// The spec is a comma-separated list of:
//   a version "5.15", "6.1", ...   hides every facility that came after it (facilities() says when each came);
//   "none"                         hides userfaultfd altogether (the system call and the device);
//   "unprivileged"                 as an unprivileged process with vm.unprivileged_userfaultfd = 0 sees it:
//                                  userfaultfd only with UFFD_USER_MODE_ONLY, /dev/userfaultfd EACCES;
//   "current"                      hides nothing (the same as an empty spec);
//   a facility's name              hides that one ("WP_ASYNC", "UFFDIO_POISON", "PAGEMAP_SCAN", ...).
// The environment variable is read when the library is loaded (ignored in a setuid/setgid or
// file-capability program, as glibc's secure_getenv ignores it). A mask applies to userfaultfds opened
// after it is set: regions that exist keep what they had.
//
// Async-signal-safety: the mask is applied in signal context (atomics only); set() and clear() are not
// async-signal-safe and must not race with the creation of regions. Thread-safety: every call is.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "faultline/result.hpp"

namespace faultline::kernel_mask {

enum class Kind : std::uint8_t { system_call, device, flag, feature, ioctl, pagemap, madvise, privilege };

// One kernel facility faultline can use, and the first Linux release that has it.
struct Facility {
  const char* name;      // "WP_ASYNC", "UFFDIO_POISON", "PAGEMAP_SCAN", "/dev/userfaultfd", ...
  Kind kind;
  std::uint64_t value;   // feature: the UFFD_FEATURE_* bit; ioctl: its _UFFDIO_* number; madvise: the advice
  int major, minor;      // first release (6, 7); 0, 0 for a privilege (a setting, not a version)
  const char* use;       // what faultline does with it
};

// The table (src/os/linux/kernel_table.inc), in order of first release.
std::span<const Facility> facilities() noexcept;

// Replaces the mask with `spec` (see above); an empty spec or "current" hides nothing.
// Errc::invalid_argument names an item that is neither a version, a profile nor a facility.
Result<void> set(std::string_view spec);

// Hides nothing again.
void clear() noexcept;

// The spec in force ("" when nothing is hidden).
std::string current();

// Whether the facility named `name` is hidden by the mask in force. For code outside faultline that
// uses the kernel directly (the bench's hand-written baselines), so that it sees what faultline sees.
bool hidden(std::string_view name) noexcept;

}  // namespace faultline::kernel_mask
