// thread/preempt.hpp: internal pieces of preemption shared by preempt.cpp and preempt_sig.cpp.
#pragma once

#include <signal.h>

#include <cstddef>

namespace faultline::preempt::detail {

// The preemption signal's handler (signal path).
void on_preempt_signal(int sig, siginfo_t* info, void* uc) noexcept;

// Counts timers deleted at detach.
void timers_released(std::size_t n) noexcept;

}  // namespace faultline::preempt::detail
