// core/page.hpp: page arithmetic. Pure functions, async-signal-safe.
#pragma once

#include <cstddef>
#include <cstdint>

namespace faultline::core {

constexpr bool is_pow2(std::uintptr_t v) noexcept { return v != 0 && (v & (v - 1)) == 0; }
constexpr std::uintptr_t align_down(std::uintptr_t v, std::uintptr_t a) noexcept { return v & ~(a - 1); }
constexpr std::uintptr_t align_up(std::uintptr_t v, std::uintptr_t a) noexcept { return (v + a - 1) & ~(a - 1); }
constexpr bool is_aligned(std::uintptr_t v, std::uintptr_t a) noexcept { return (v & (a - 1)) == 0; }

// The system page size, read once at start-up (outside signal context) and cached.
std::size_t page_size() noexcept;

// The transparent huge page size faultline uses (RegionOptions::huge_pages): 2 MiB.
inline constexpr std::size_t kHugePage = std::size_t{2} << 20;

}  // namespace faultline::core
