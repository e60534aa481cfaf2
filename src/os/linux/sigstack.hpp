// os/linux/sigstack.hpp: how large a signal frame this machine's kernel may write, how much room
// faultline's handler wants, and mapping a stack for it (not signal path: sysconf may take locks, and
// stacks are mapped outside handlers; the constant is usable anywhere).
#pragma once

#include <signal.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>

#include "os/linux/syscall.hpp"

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

// The room faultline's handler wants below its frame (the crash report, reading /proc/self/maps and
// unwinding, completes on 16 KiB with the frame): with less left, the report moves to its spare stack.
inline constexpr std::size_t kHandlerStackRoom = std::size_t{32} << 10;

// The smallest alternate stack faultline's handler runs on: a signal frame and kHandlerStackRoom. A
// thread's own alternate stack smaller than this is replaced at attach (see thread.hpp).
inline std::size_t smallest_usable_altstack() noexcept { return min_signal_stack() + kHandlerStackRoom; }

// Maps a stack of `size` bytes (whole pages) with one PROT_NONE guard page below it, so that running
// off its end faults, visibly: returns the mapping's start (the guard; the stack is the `size` bytes
// above it, the mapping `size` + one page long), or -errno with *failed naming the call that failed
// ("mmap" or "mprotect"; nothing is left mapped). Through the raw layer: fault injection reaches it.
inline long map_guarded_stack(std::size_t size, const char** failed) noexcept {
  const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  const long m = raw_mmap(nullptr, size + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (is_err(m)) {
    *failed = "mmap";
    return m;
  }
  if (const long rc = raw_mprotect(reinterpret_cast<void*>(m), page, PROT_NONE); is_err(rc)) {
    raw_munmap(reinterpret_cast<void*>(m), size + page);
    *failed = "mprotect";
    return rc;
  }
  return m;
}

}  // namespace faultline::os
