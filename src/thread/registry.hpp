// thread/registry.hpp: the registry of attached threads (internal; not signal path).
#pragma once

#include <cstddef>
#include <mutex>

#include "thread/state.hpp"

namespace faultline::thread {

// Number of attached threads.
std::size_t attached_count();

// The registry: a list of attached threads guarded by registry_mutex() (attach and detach take it).
std::mutex& registry_mutex() noexcept;
ThreadState* registry_head() noexcept;  // with registry_mutex() held

// Releases what preemption holds for `ts` (its timers). Called at detach (thread/preempt.cpp).
void release_preemption(ThreadState& ts) noexcept;

}  // namespace faultline::thread
