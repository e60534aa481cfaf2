// os/linux/inject.hpp: the hook of the raw-syscall layer: fault injection, the observer of calls, and
// (issue "older kernels") the kernel-feature mask all sit behind one flag that raw_syscall() tests with
// one predictable branch. The checks run in signal context: atomics, raw system calls, no allocation
// (inject_sig.cpp); arming and parsing are not signal path (inject.cpp). Public face:
// faultline/fault_injection.hpp.
#pragma once

#include <atomic>
#include <cstdint>

#include "faultline/fault_injection.hpp"

namespace faultline::os::inject {

using fault_injection::Op;

// True while anything is hooked (rules, counting, an observer, a kernel mask).
extern std::atomic<bool> g_hooked;

// raw_syscall() when hooked: applies rules and the observer before the call, the kernel mask after.
long hooked_syscall(long n, long a1, long a2, long a3, long a4, long a5, long a6) noexcept;

// A named point outside system calls (thread creation, allocation): 0, or -errno to fail with.
// Async-signal-safe.
long point_slow(Op op) noexcept;
inline long point(Op op) noexcept {
  return __builtin_expect(g_hooked.load(std::memory_order_relaxed), false) ? point_slow(op) : 0;
}

}  // namespace faultline::os::inject
