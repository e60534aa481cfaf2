// os/linux/inject_state.hpp: the state of fault injection, shared by its checks (inject_sig.cpp, signal
// path) and arming (inject.cpp). Fixed arrays of atomics: no allocation, no lock.
#pragma once

#include <atomic>
#include <cstdint>

#include "faultline/fault_injection.hpp"

namespace faultline::os::inject {

constexpr unsigned kOps = static_cast<unsigned>(fault_injection::Op::count);

struct RuleState {
  std::atomic<std::uint64_t> nth{0};  // 0: no rule
  std::atomic<std::uint64_t> count{0};
  std::atomic<int> error{0};
  std::atomic<std::int64_t> stall_ns{0};
};

// The kernel-feature mask (kernel_mask.cpp arms it, kernel_mask_sig.cpp applies it). Each field names what
// the masked kernel lacks; all zero: nothing hidden.
struct MaskState {
  std::atomic<std::uint64_t> features{0};      // UFFD_FEATURE_* bits UFFDIO_API does not offer
  std::atomic<std::uint64_t> ioctls{0};        // 1 << _UFFDIO_* of the ioctls that fail with EINVAL
  std::atomic<bool> syscall{false};            // userfaultfd(2) fails with EPERM (seccomp, containers)
  std::atomic<bool> device{false};             // /dev/userfaultfd is missing (ENOENT)
  std::atomic<bool> user_mode_only{false};     // the UFFD_USER_MODE_ONLY flag is unknown (EINVAL)
  std::atomic<bool> kernel_faults{false};      // unprivileged: only UFFD_USER_MODE_ONLY fds, /dev/userfaultfd EACCES
  std::atomic<bool> pagemap_scan{false};       // PAGEMAP_SCAN fails with ENOTTY
  std::atomic<bool> populate{false};           // MADV_POPULATE_READ/WRITE fail with EINVAL
  std::atomic<bool> active{false};             // any of the above
  std::atomic<std::uint32_t> generation{0};    // bumped by every change of the mask
};

struct State {
  std::atomic<bool> counting{false};  // rules and counters are live
  std::atomic<std::uint64_t> calls[kOps] = {};
  RuleState rules[kOps];
  std::atomic<std::uint64_t> injected{0};
  std::atomic<fault_injection::Observer> observer{nullptr};
  std::atomic<void*> observer_data{nullptr};
};

extern State g_state;
extern MaskState g_mask;

// The mask's part of hooked_syscall (kernel_mask_sig.cpp; signal path). mask_before: 0 to make the call,
// or -errno to fail it as the masked kernel would. mask_after: after a successful call, hides from its
// output what the masked kernel would not report.
long mask_before(long n, long a1, long a2, long a3) noexcept;
void mask_after(long n, long a1, long a2, long a3) noexcept;

// Recomputes g_hooked from what is active (counting, an observer, the kernel mask). Not signal path.
void update_hooked() noexcept;

}  // namespace faultline::os::inject
