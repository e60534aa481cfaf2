// faultline/internal/bench.hpp: NOT PUBLIC API. Hooks into faultline's internals for its own
// benchmark (`faultline bench`), exported so that the bench measures the code fault handlers run rather
// than a copy of it. No stability promise: do not use them in programs. Not installed.
#pragma once

#include <cstddef>
#include <cstdint>

namespace faultline::internal {

// Looks up addrs[(start + k) % n] in the region table for k in [0, count), inside one trap epoch, as a
// fault handler does; returns a checksum of the regions found (so that nothing is optimised away).
// Async-signal-safe.
std::uintptr_t bench_lookup_batch(const std::uintptr_t* addrs, std::size_t n, std::size_t start,
                                  std::size_t count) noexcept;

}  // namespace faultline::internal
