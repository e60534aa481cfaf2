// region/table_sig.cpp: the region table's lookup (signal path).
#include "region/table.hpp"

namespace faultline::region {

constinit std::atomic<const Top*> g_top{nullptr};
constinit core::EpochDomain g_epoch{};

namespace {

// The index of the last element <= x in the sorted a[0..n) (n > 0), or 0 when even a[0] > x (the caller
// checks). Branch-free: the loop's only branch is its trip count, which depends on n alone.
inline std::size_t last_not_above(const std::uintptr_t* a, std::size_t n, std::uintptr_t x) noexcept {
  const std::uintptr_t* p = a;
  while (n > 1) {
    const std::size_t half = n / 2;
    p = p[half] <= x ? p + half : p;  // a conditional move
    n -= half;
  }
  return static_cast<std::size_t>(p - a);
}

}  // namespace

detail::RegionImpl* lookup(std::uintptr_t addr) noexcept {
  const Top* top = g_top.load(std::memory_order_acquire);
  if (top == nullptr || top->first.empty()) return nullptr;
  const Leaf* leaf = top->leaf.data()[last_not_above(top->first.data(), top->first.size(), addr)];
  if (leaf->n == 0) return nullptr;
  const std::size_t i = last_not_above(leaf->base, leaf->n, addr);
  return addr >= leaf->base[i] && addr < leaf->end[i] ? leaf->r[i] : nullptr;
}

detail::RegionImpl* find_and_pin(std::uintptr_t addr) noexcept {
  const unsigned side = g_epoch.enter();
  detail::RegionImpl* r = lookup(addr);
  if (r != nullptr) r->inflight.fetch_add(1, std::memory_order_acq_rel);
  g_epoch.exit(side);
  return r;
}

}  // namespace faultline::region
