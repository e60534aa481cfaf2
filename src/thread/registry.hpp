// thread/registry.hpp: the registry of attached threads (internal; not signal path).
#pragma once

#include <cstddef>

namespace faultline::thread {

// Records the main thread's stack bounds (when called on the main thread). Idempotent.
void record_main_stack() noexcept;
// Number of attached threads.
std::size_t attached_count();

}  // namespace faultline::thread
