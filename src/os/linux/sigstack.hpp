// os/linux/sigstack.hpp: how large a signal frame this machine's kernel may write (not signal path:
// sysconf may take locks).
#pragma once

#include <signal.h>
#include <sys/auxv.h>
#include <unistd.h>

#include <cstddef>

namespace faultline::os {

// The smallest stack a signal handler's frame fits on: AT_MINSIGSTKSZ when the kernel gives it (x86-64
// since Linux 5.14, arm64 since 4.18), else glibc's sysconf(_SC_MINSIGSTKSZ) (derived from the CPU's
// XSAVE size on x86-64), else the architecture's MINSIGSTKSZ. qemu-user and older kernels give 0 for
// AT_MINSIGSTKSZ: without this floor a 16-byte alternate stack would be accepted.
inline std::size_t min_signal_stack() noexcept {
  std::size_t n = static_cast<std::size_t>(getauxval(AT_MINSIGSTKSZ));
  if (n == 0) {
    const long s = sysconf(_SC_MINSIGSTKSZ);
    n = s > 0 ? static_cast<std::size_t>(s) : 0;
  }
  // (With _GNU_SOURCE, glibc 2.34+ defines MINSIGSTKSZ as sysconf(_SC_MINSIGSTKSZ) too.)
  const long floor = MINSIGSTKSZ;
  const std::size_t f = floor > 0 ? static_cast<std::size_t>(floor) : 2048;
  return n > f ? n : f;
}

}  // namespace faultline::os
