// region/bench_hooks_sig.cpp: faultline/internal/bench.hpp, the benchmark's window onto the region table
// (signal path: it runs the lookup exactly as a fault handler does).
#include "faultline/internal/bench.hpp"
#include "region/table.hpp"

namespace faultline::internal {

std::uintptr_t bench_lookup_batch(const std::uintptr_t* addrs, std::size_t n, std::size_t start,
                                  std::size_t count) noexcept {
  std::uintptr_t sink = 0;
  const unsigned side = region::g_epoch.enter();
  for (std::size_t k = 0; k < count; ++k) {
    sink += reinterpret_cast<std::uintptr_t>(region::lookup(addrs[(start + k) % n]));
    asm volatile("" : "+r"(sink));
  }
  region::g_epoch.exit(side);
  return sink;
}

}  // namespace faultline::internal
