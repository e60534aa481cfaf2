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
// XSAVE size on x86-64; the architecture's constant when the kernel says nothing, as under qemu-user),
// never below 2048 bytes (the oldest MINSIGSTKSZ): a 16-byte alternate stack is never accepted. Not
// glibc's MINSIGSTKSZ macro: with _GNU_SOURCE (glibc 2.34+) it is sysconf(_SC_SIGSTKSZ), four times the
// frame (47808 bytes on a machine whose frame is 11952).
inline std::size_t min_signal_stack() noexcept {
  std::size_t n = static_cast<std::size_t>(getauxval(AT_MINSIGSTKSZ));
  if (n == 0) {
    const long s = sysconf(_SC_MINSIGSTKSZ);
    n = s > 0 ? static_cast<std::size_t>(s) : 0;
  }
  return n > 2048 ? n : 2048;
}

// The smallest alternate stack faultline's handler runs on: a signal frame and 32 KiB for the handler
// (the crash report, reading /proc/self/maps and unwinding, completes on 16 KiB with the frame). A
// thread's own alternate stack smaller than this is replaced at attach (see thread.hpp).
inline std::size_t smallest_usable_altstack() noexcept { return min_signal_stack() + (std::size_t{32} << 10); }

}  // namespace faultline::os
