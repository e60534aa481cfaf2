// os/linux/inject_sig.cpp: the checks of fault injection and the call observer (signal path: raw system
// calls in signal handlers pass here when hooked). Atomics and the raw syscall instruction only.
#include <linux/userfaultfd.h>
#include <sys/syscall.h>

#include <cerrno>

#include "arch/arch.hpp"
#include "linux_uapi.hpp"
#include "os/linux/inject.hpp"
#include "os/linux/inject_state.hpp"

namespace faultline::os::inject {

constinit std::atomic<bool> g_hooked{false};
constinit State g_state{};

namespace {

constexpr long kNone = -1;

// The named operation a system call is, or kNone.
long op_of(long n, long a2) noexcept {
  switch (n) {
    case SYS_mmap: return static_cast<long>(Op::mmap);
    case SYS_munmap: return static_cast<long>(Op::munmap);
    case SYS_mprotect: return static_cast<long>(Op::mprotect);
    case SYS_madvise: return static_cast<long>(Op::madvise);
    case SYS_mincore: return static_cast<long>(Op::mincore);
    case SYS_memfd_create: return static_cast<long>(Op::memfd_create);
    case SYS_ftruncate: return static_cast<long>(Op::ftruncate);
    case SYS_fallocate: return static_cast<long>(Op::fallocate);
    case SYS_openat: return static_cast<long>(Op::open);
    case SYS_pread64: return static_cast<long>(Op::pread);
    case SYS_pwrite64: return static_cast<long>(Op::pwrite);
    case SYS_pipe2: return static_cast<long>(Op::pipe);
    case SYS_splice: return static_cast<long>(Op::splice);
    case SYS_userfaultfd: return static_cast<long>(Op::userfaultfd);
    case SYS_tgkill: return static_cast<long>(Op::tgkill);
    case SYS_rt_tgsigqueueinfo: return static_cast<long>(Op::rt_tgsigqueueinfo);
    case SYS_sigaltstack: return static_cast<long>(Op::sigaltstack);
    case SYS_eventfd2: return static_cast<long>(Op::eventfd);
    case SYS_sendmsg: return static_cast<long>(Op::sendmsg);
    case SYS_recvmsg: return static_cast<long>(Op::recvmsg);
    case SYS_ioctl:
      switch (static_cast<unsigned long>(a2)) {
        case USERFAULTFD_IOC_NEW: return static_cast<long>(Op::userfaultfd);
        case UFFDIO_API: return static_cast<long>(Op::uffdio_api);
        case UFFDIO_REGISTER: return static_cast<long>(Op::uffdio_register);
        case UFFDIO_UNREGISTER: return static_cast<long>(Op::uffdio_unregister);
        case UFFDIO_COPY: return static_cast<long>(Op::uffdio_copy);
        case UFFDIO_ZEROPAGE: return static_cast<long>(Op::uffdio_zeropage);
        case UFFDIO_WAKE: return static_cast<long>(Op::uffdio_wake);
        case UFFDIO_WRITEPROTECT: return static_cast<long>(Op::uffdio_writeprotect);
        case UFFDIO_CONTINUE: return static_cast<long>(Op::uffdio_continue);
        case UFFDIO_POISON: return static_cast<long>(Op::uffdio_poison);
        case UFFDIO_MOVE: return static_cast<long>(Op::uffdio_move);
        case PAGEMAP_SCAN: return static_cast<long>(Op::pagemap_scan);
        default: return kNone;
      }
    default: return kNone;
  }
}

void stall(std::int64_t ns) noexcept {
  struct timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
  while (arch::Current::syscall6(SYS_nanosleep, reinterpret_cast<long>(&ts), reinterpret_cast<long>(&ts), 0, 0, 0,
                                 0) == -EINTR) {
  }
}

void observe(unsigned op, long a1, long a2, long a3, long result) noexcept {
  if (fault_injection::Observer obs = g_state.observer.load(std::memory_order_acquire); obs != nullptr) {
    obs(static_cast<Op>(op), static_cast<std::uintptr_t>(a1), static_cast<std::uintptr_t>(a2),
        static_cast<std::uintptr_t>(a3), result, g_state.observer_data.load(std::memory_order_relaxed));
  }
}

// Counts a call of `op` and applies its rule: 0 to go on, or -errno.
long apply(unsigned op) noexcept {
  if (!g_state.counting.load(std::memory_order_relaxed)) return 0;
  const std::uint64_t k = g_state.calls[op].fetch_add(1, std::memory_order_relaxed) + 1;
  const RuleState& r = g_state.rules[op];
  const std::uint64_t nth = r.nth.load(std::memory_order_relaxed);
  if (nth == 0 || k < nth) return 0;
  const std::uint64_t count = r.count.load(std::memory_order_relaxed);
  if (count != 0 && k >= nth + count) return 0;
  if (const std::int64_t ns = r.stall_ns.load(std::memory_order_relaxed); ns > 0) stall(ns);
  const int e = r.error.load(std::memory_order_relaxed);
  if (e == 0) return 0;
  g_state.injected.fetch_add(1, std::memory_order_relaxed);
  return -e;
}

}  // namespace

long hooked_syscall(long n, long a1, long a2, long a3, long a4, long a5, long a6) noexcept {
  const long op = op_of(n, a2);
  if (op == kNone) return arch::Current::syscall6(n, a1, a2, a3, a4, a5, a6);
  long rc = apply(static_cast<unsigned>(op));
  if (rc == 0 && g_mask.active.load(std::memory_order_relaxed)) rc = mask_before(n, a1, a2, a3);
  if (rc == 0) {
    rc = arch::Current::syscall6(n, a1, a2, a3, a4, a5, a6);
    if (rc >= 0 && g_mask.active.load(std::memory_order_relaxed)) mask_after(n, a1, a2, a3);
  }
  observe(static_cast<unsigned>(op), a1, a2, a3, rc);
  return rc;
}

long point_slow(Op op) noexcept {
  if (static_cast<unsigned>(op) >= static_cast<unsigned>(Op::count)) return 0;
  const long rc = apply(static_cast<unsigned>(op));
  observe(static_cast<unsigned>(op), 0, 0, 0, rc);
  return rc;
}

}  // namespace faultline::os::inject

namespace faultline::fault_injection {

std::uint64_t calls(Op op) noexcept {
  const auto i = static_cast<unsigned>(op);
  return i < static_cast<unsigned>(Op::count) ? os::inject::g_state.calls[i].load(std::memory_order_relaxed) : 0;
}

std::uint64_t injected() noexcept { return os::inject::g_state.injected.load(std::memory_order_relaxed); }

bool armed() noexcept { return os::inject::g_state.counting.load(std::memory_order_relaxed); }

const char* op_name(Op op) noexcept {
  static constexpr const char* kNames[] = {
      "mmap", "munmap", "mprotect", "madvise", "mincore", "memfd_create", "ftruncate", "fallocate", "open", "pread", "pwrite", "pipe", "splice",
      "userfaultfd", "uffdio_api", "uffdio_register", "uffdio_unregister", "uffdio_copy", "uffdio_zeropage",
      "uffdio_wake", "uffdio_writeprotect", "uffdio_continue", "uffdio_poison", "uffdio_move", "pagemap_scan",
      "tgkill", "rt_tgsigqueueinfo", "sigaltstack", "timer_create", "timer_settime", "eventfd", "sendmsg", "recvmsg",
      "thread_create", "alloc", "store_get", "store_set", "store_wait"};
  static_assert(sizeof(kNames) / sizeof(kNames[0]) == static_cast<unsigned>(Op::count));
  const auto i = static_cast<unsigned>(op);
  return i < static_cast<unsigned>(Op::count) ? kNames[i] : "?";
}

}  // namespace faultline::fault_injection
