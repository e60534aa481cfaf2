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

// The last region this thread found, and the table version it was found in. A signal can interrupt
// find_and_pin() on the same thread and run it again, so the entry is a per-thread seqlock: `seq` is odd
// while the entry is written (an interrupting call neither trusts nor writes it then) and changes with
// every write (a read that a write interrupted is thrown away). Only this thread touches it: compiler
// fences are enough.
struct LastHit {
  unsigned seq;
  std::uint64_t generation;
  std::uintptr_t base, end;
  detail::RegionImpl* r;
};
__attribute__((tls_model("initial-exec"))) constinit thread_local LastHit t_last{};

// The cached region for addr in table version `generation`, or null.
detail::RegionImpl* cached(std::uint64_t generation, std::uintptr_t addr) noexcept {
  const unsigned seq = t_last.seq;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  const LastHit hit = t_last;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  if ((seq & 1) != 0 || t_last.seq != seq) return nullptr;
  if (hit.generation != generation || addr < hit.base || addr >= hit.end) return nullptr;
  return hit.r;
}

void remember(std::uint64_t generation, detail::RegionImpl* r) noexcept {
  const unsigned seq = t_last.seq;
  if ((seq & 1) != 0) return;  // we interrupted this thread's own write: leave it to finish
  t_last.seq = seq + 1;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  t_last.generation = generation;
  t_last.base = r->base;
  t_last.end = r->end;
  t_last.r = r;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  t_last.seq = seq + 2;
}

detail::RegionImpl* search(const Top* top, std::uintptr_t addr) noexcept {
  if (top == nullptr || top->first.empty()) return nullptr;
  const Leaf* leaf = top->leaf_at(last_not_above(top->first.data(), top->first.size(), addr));
  if (leaf->n == 0) return nullptr;
  // The line, then the entry within it; a leaf of two lines at most (a small table) is searched whole.
  // Fixed lengths (the slots past n hold kNoBase), so the loops unroll; the one branch depends on the
  // leaf's size, which a table keeps for long.
  std::size_t i;
  if (leaf->n <= 2 * kLineEntries) {
    i = last_not_above(leaf->base, 2 * kLineEntries, addr);
  } else {
    const std::size_t first = last_not_above(leaf->line_first, kLeafLines, addr) * kLineEntries;
    i = first + last_not_above(leaf->base + first, kLineEntries, addr);
  }
  return addr >= leaf->base[i] && addr < leaf->end[i] ? leaf->r[i] : nullptr;
}

}  // namespace

detail::RegionImpl* lookup(std::uintptr_t addr) noexcept { return search(g_top.load(std::memory_order_acquire), addr); }

detail::RegionImpl* find_and_pin(std::uintptr_t addr) noexcept {
  const unsigned side = g_epoch.enter();
  const Top* top = g_top.load(std::memory_order_acquire);
  detail::RegionImpl* r = nullptr;
  if (top != nullptr) {
    // A region found in the published version is registered in it, so alive until the epoch is left.
    // The generation is read before the leaves: a leaf replaced after it was read makes it stale, and
    // the next lookup searches.
    const std::uint64_t generation = top->generation.load(std::memory_order_acquire);
    r = cached(generation, addr);
    if (r == nullptr) {
      r = search(top, addr);
      if (r != nullptr) remember(generation, r);
    }
  }
  if (r != nullptr) r->inflight.fetch_add(1, std::memory_order_acq_rel);
  g_epoch.exit(side);
  return r;
}

}  // namespace faultline::region
