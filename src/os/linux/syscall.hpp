// os/linux/syscall.hpp: faultline's raw system-call layer (compiler-rt's `internal_` style).
//
// Every function issues the system call directly through the architecture layer and returns the
// kernel's answer: a non-negative result, or -errno. None of them reads or writes `errno`, takes a lock,
// or allocates, so all are async-signal-safe and signal-path code can be audited by reading this file.
// Use `is_err(r)` to test a result and `-r` for the errno value.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>

#include <type_traits>

#include "arch/arch.hpp"
#include "os/linux/inject.hpp"

namespace faultline::os {

// Every system call faultline makes. When fault injection, the call observer or the kernel-feature
// mask is active (os/linux/inject.hpp), the call goes through the hook; otherwise straight to the kernel.
inline long raw_syscall(long n, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0, long a5 = 0,
                        long a6 = 0) noexcept {
  if (__builtin_expect(inject::g_hooked.load(std::memory_order_relaxed), false)) {
    return inject::hooked_syscall(n, a1, a2, a3, a4, a5, a6);
  }
  return arch::Current::syscall6(n, a1, a2, a3, a4, a5, a6);
}
template <class T>
inline long arg(T v) noexcept {
  if constexpr (std::is_pointer_v<T>) return reinterpret_cast<long>(v);
  else return static_cast<long>(v);
}

constexpr bool is_err(long r) noexcept { return r < 0 && r > -4096; }

inline long raw_write(int fd, const void* buf, std::size_t n) noexcept {
  return raw_syscall(SYS_write, fd, arg(buf), arg(n));
}
// Writes everything (retrying on EINTR and short writes). Returns bytes written or -errno.
inline long raw_write_all(int fd, const void* buf, std::size_t n) noexcept {
  const char* p = static_cast<const char*>(buf);
  std::size_t done = 0;
  while (done < n) {
    long r = raw_write(fd, p + done, n - done);
    if (r == -4 /*EINTR*/) continue;
    if (r <= 0) return r == 0 ? static_cast<long>(done) : r;
    done += static_cast<std::size_t>(r);
  }
  return static_cast<long>(done);
}
inline long raw_read(int fd, void* buf, std::size_t n) noexcept {
  return raw_syscall(SYS_read, fd, arg(buf), arg(n));
}
inline long raw_pread(int fd, void* buf, std::size_t n, long off) noexcept {
  return raw_syscall(SYS_pread64, fd, arg(buf), arg(n), off);
}
inline long raw_open(const char* path, int flags, int mode = 0) noexcept {
  return raw_syscall(SYS_openat, -100 /*AT_FDCWD*/, arg(path), flags, mode);
}
inline long raw_close(int fd) noexcept { return raw_syscall(SYS_close, fd); }
inline long raw_pwrite(int fd, const void* buf, std::size_t n, long off) noexcept {
  return raw_syscall(SYS_pwrite64, fd, arg(buf), arg(n), off);
}
inline long raw_memfd_create(const char* name, unsigned flags) noexcept {
  return raw_syscall(SYS_memfd_create, arg(name), flags);
}
inline long raw_ftruncate(int fd, long len) noexcept { return raw_syscall(SYS_ftruncate, fd, len); }
inline long raw_pipe2(int fds[2], int flags) noexcept { return raw_syscall(SYS_pipe2, arg(fds), flags); }
inline long raw_fcntl(int fd, int cmd, long v) noexcept { return raw_syscall(SYS_fcntl, fd, cmd, v); }
// splice(2) with both offsets given as pointers (nullptr for a pipe's end).
inline long raw_splice(int in, long* in_off, int out, long* out_off, std::size_t len, unsigned flags) noexcept {
  return raw_syscall(SYS_splice, in, arg(in_off), out, arg(out_off), arg(len), flags);
}
inline long raw_fallocate(int fd, int mode, long off, long len) noexcept {
  return raw_syscall(SYS_fallocate, fd, mode, off, len);
}
inline long raw_mincore(void* addr, std::size_t len, unsigned char* vec) noexcept {
  return raw_syscall(SYS_mincore, arg(addr), arg(len), arg(vec));
}
inline long raw_eventfd(unsigned initval, int flags) noexcept { return raw_syscall(SYS_eventfd2, initval, flags); }
inline long raw_mprotect(void* addr, std::size_t len, int prot) noexcept {
  return raw_syscall(SYS_mprotect, arg(addr), arg(len), prot);
}
inline long raw_madvise(void* addr, std::size_t len, int advice) noexcept {
  return raw_syscall(SYS_madvise, arg(addr), arg(len), advice);
}
// Returns the address or -errno (as a long).
inline long raw_mmap(void* addr, std::size_t len, int prot, int flags, int fd, long off) noexcept {
  return raw_syscall(SYS_mmap, arg(addr), arg(len), prot, flags, fd, off);
}
inline long raw_munmap(void* addr, std::size_t len) noexcept {
  return raw_syscall(SYS_munmap, arg(addr), arg(len));
}

// The kernel's struct sigaction for rt_sigaction (not glibc's: the mask is 8 bytes, then a restorer).
struct KernelSigaction {
  void (*handler)(int);
  unsigned long flags;
  void* restorer;
  std::uint64_t mask;
};
// Only for SIG_DFL / SIG_IGN: installing a real handler needs a restorer, which libc's sigaction adds.
inline long raw_sigaction(int sig, const KernelSigaction* act, KernelSigaction* old) noexcept {
  return raw_syscall(SYS_rt_sigaction, sig, arg(act), arg(old), 8);
}
inline long raw_sigprocmask(int how, const std::uint64_t* set, std::uint64_t* old) noexcept {
  return raw_syscall(SYS_rt_sigprocmask, how, arg(set), arg(old), 8);
}
inline long raw_sigaltstack(const stack_t* ss, stack_t* old) noexcept {
  return raw_syscall(SYS_sigaltstack, arg(ss), arg(old));
}
inline long raw_getpid() noexcept { return raw_syscall(SYS_getpid); }
inline long raw_gettid() noexcept { return raw_syscall(SYS_gettid); }
inline long raw_tgkill(long pid, long tid, int sig) noexcept { return raw_syscall(SYS_tgkill, pid, tid, sig); }
// Queues `sig` with the caller's siginfo to thread `tid` of process `pid`. The kernel accepts a
// positive si_code (one that looks kernel-generated) only when the target is the calling process.
inline long raw_rt_tgsigqueueinfo(long pid, long tid, int sig, const void* info) noexcept {
  return raw_syscall(SYS_rt_tgsigqueueinfo, pid, tid, sig, arg(info));
}
// Copies `n` bytes at `remote` in this process to `local` without faulting: an unmapped source gives
// -EFAULT (or a short count at the end of a mapping).
inline long raw_read_own_memory(void* local, const void* remote, std::size_t n) noexcept {
  struct Iov {
    const void* base;
    std::size_t len;
  } l{local, n}, r{remote, n};
  return raw_syscall(SYS_process_vm_readv, raw_syscall(SYS_getpid), arg(&l), 1, arg(&r), 1, 0);
}
inline long raw_ioctl(int fd, unsigned long req, void* argp) noexcept {
  return raw_syscall(SYS_ioctl, fd, static_cast<long>(req), arg(argp));
}
inline long raw_futex_wait(const std::uint32_t* word, std::uint32_t expected,
                           const struct timespec* timeout = nullptr) noexcept {
  return raw_syscall(SYS_futex, arg(word), FUTEX_WAIT_PRIVATE, static_cast<long>(expected), arg(timeout));
}
inline long raw_futex_wake(const std::uint32_t* word, int count) noexcept {
  return raw_syscall(SYS_futex, arg(word), FUTEX_WAKE_PRIVATE, count);
}
// The futex word inside a std::atomic<std::uint32_t> (lock-free, same size and layout).
inline std::uint32_t* futex_word(std::atomic<std::uint32_t>& a) noexcept {
  static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
  return reinterpret_cast<std::uint32_t*>(&a);
}
// CLOCK_MONOTONIC in nanoseconds.
inline std::int64_t monotonic_ns() noexcept {
  struct timespec ts{};
  raw_syscall(SYS_clock_gettime, CLOCK_MONOTONIC, arg(&ts));
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}
// Sleeps while *w == expected, until `deadline_ns` (CLOCK_MONOTONIC). Returns false once the deadline
// has passed (without sleeping); true after a wake-up, a spurious return or a changed word: the caller
// re-reads the word.
inline bool futex_wait_until(std::atomic<std::uint32_t>& w, std::uint32_t expected, std::int64_t deadline_ns) noexcept {
  const std::int64_t left = deadline_ns - monotonic_ns();
  if (left <= 0) return false;
  struct timespec ts{static_cast<time_t>(left / 1'000'000'000), static_cast<long>(left % 1'000'000'000)};
  raw_futex_wait(futex_word(w), expected, &ts);  // EAGAIN, EINTR, ETIMEDOUT: the caller re-reads
  return true;
}
inline long raw_nanosleep(const struct timespec* req) noexcept {
  return raw_syscall(SYS_nanosleep, arg(req), 0);
}
inline long raw_clock_gettime(clockid_t clk, struct timespec* ts) noexcept {
  return raw_syscall(SYS_clock_gettime, clk, arg(ts));
}
inline long raw_sched_yield() noexcept { return raw_syscall(SYS_sched_yield); }
[[noreturn]] inline void raw_exit_group(int code) noexcept {
  for (;;) raw_syscall(SYS_exit_group, code);
}

// Signal-set helpers for the kernel's 64-bit mask.
constexpr std::uint64_t sigbit(int sig) noexcept { return std::uint64_t{1} << (sig - 1); }

}  // namespace faultline::os
