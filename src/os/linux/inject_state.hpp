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

struct State {
  std::atomic<bool> counting{false};  // rules and counters are live
  std::atomic<std::uint64_t> calls[kOps] = {};
  RuleState rules[kOps];
  std::atomic<std::uint64_t> injected{0};
  std::atomic<fault_injection::Observer> observer{nullptr};
  std::atomic<void*> observer_data{nullptr};
};

extern State g_state;

// Recomputes g_hooked from what is active (counting, an observer, the kernel mask).
void update_hooked() noexcept;

}  // namespace faultline::os::inject
