// region/table.hpp: the region table: which region holds an address.
//
// Two levels of immutable sorted arrays: a top array of leaves (each leaf at most kLeafCap entries,
// with the first base of each leaf beside it) published through one atomic pointer. A writer copies
// the top array and the one leaf it changes, publishes, waits out the trap epoch, then frees the old
// versions: O(n / kLeafCap + kLeafCap) per update instead of O(n), so 100 000 regions register in well
// under a second, and lookup is branch-free binary searches: the top array, then the leaf's line index
// and one cache line of the leaf (a mispredicted branch costs more than the cache line it guards). Readers (lookup) run in signal context inside a dispatch (table_sig.cpp);
// writers take the table mutex (table.cpp).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

#include "core/epoch.hpp"
#include "faultline/result.hpp"
#include "region/impl.hpp"

namespace faultline::region {

constexpr std::size_t kLeafCap = 128;

// Bases per cache line of a leaf's `base`, and lines per leaf.
constexpr std::size_t kLineEntries = 64 / sizeof(std::uintptr_t);
constexpr std::size_t kLeafLines = kLeafCap / kLineEntries;

// Structure of arrays: the lookup's search reads only `line_first` and one line of `base`. line_first[k]
// is base[k * kLineEntries] (the first base of each cache line of `base`): the search picks the line
// there, then the entry within that line, touching three cache lines where a binary search over `base`
// touched five or six (at 100 000 regions, 37-41 ns a lookup instead of 44-46). Slots past `n`, in both
// arrays, hold kNoBase, above every address: the two searches have fixed lengths.
constexpr std::uintptr_t kNoBase = ~std::uintptr_t{0};
struct alignas(64) Leaf {
  Leaf() noexcept {
    for (auto& b : line_first) b = kNoBase;
    for (std::size_t i = 0; i < kLeafCap; ++i) {
      base[i] = kNoBase;
      end[i] = 0;
      r[i] = nullptr;
    }
  }
  std::size_t n = 0;
  std::uintptr_t line_first[kLeafLines];
  alignas(64) std::uintptr_t base[kLeafCap];
  std::uintptr_t end[kLeafCap];
  detail::RegionImpl* r[kLeafCap];
};
// A change that keeps the number of leaves (most registrations and removals: the leaf is not full, or
// not left empty) replaces its one leaf in place: the slot leaf[i] is stored with release and read with
// acquire, and `generation` moves on. Only a split or a leaf left empty publishes a new Top. So the top
// array a lookup searches first stays in the readers' caches while regions come and go (a new Top is
// 12 KiB at 100 000 regions, every line of it a cache miss for each reader).
struct Top {
  // Changes, to a value never used before (even at the same address), with every change a reader can
  // see: a new Top, or a leaf replaced in place. A thread's remembered region is trusted only while it
  // holds (table_sig.cpp).
  std::atomic<std::uint64_t> generation{0};
  std::vector<const Leaf*> leaf;  // the slots: read with leaf_at(); replaced only by the writer
  // Separators, not copies of the bases: every entry of leaf[i] has base >= first[i] when i > 0, and
  // < first[i + 1]. A base may be below first[0] (the search clamps to leaf 0). Registrations and
  // removals leave them alone, so that they need no new Top.
  std::vector<std::uintptr_t> first;
  Top() = default;
  // The writer's copy (under the table mutex: no slot changes meanwhile); a new generation follows.
  Top(const Top& o) : leaf(o.leaf), first(o.first) {}
  Top& operator=(const Top&) = delete;
  // Leaf i, as published. Async-signal-safe.
  const Leaf* leaf_at(std::size_t i) const noexcept { return __atomic_load_n(&leaf.data()[i], __ATOMIC_ACQUIRE); }
};

extern std::atomic<const Top*> g_top;

// The table's own epoch. Readers hold it only around a lookup (and the pin or the few reads that follow):
// never while a fill, a barrier or any user code runs. So a writer's wait for readers is a wait of
// microseconds, and registration is never hostage to a slow fault handler, a pager, or a handler that
// registers a region itself.
extern core::EpochDomain g_epoch;

// The region that contains addr, or null. Async-signal-safe; call inside g_epoch (it keeps the table
// and the region alive until exit) or holding the table mutex.
detail::RegionImpl* lookup(std::uintptr_t addr) noexcept;

// Looks addr up and pins the region it finds (RegionImpl::inflight), so that it stays alive after the
// epoch is left; unpin() when done. Null when no region holds addr. Async-signal-safe.
// Each thread remembers the last region it found and the table version it found it in: while that
// version is the published one, a fault in the same region (the common case: a collector's barrier, a
// pager's window) skips the search. The version check makes the shortcut exactly as safe as the search.
detail::RegionImpl* find_and_pin(std::uintptr_t addr) noexcept;
inline void unpin(detail::RegionImpl* r) noexcept { r->inflight.fetch_sub(1, std::memory_order_acq_rel); }

// Writers. Every call below needs table_mutex() held.
std::mutex& table_mutex() noexcept;
// The first registered region overlapping [base, end), or null.
const detail::RegionImpl* find_overlap(std::uintptr_t base, std::uintptr_t end);
// Publishes a table with `r` added / removed, and waits until no reader can still see the old one (a
// lookup's worth of time). erase() leaves pins alone: the caller waits for them.
Result<void> insert(detail::RegionImpl* r);
Result<void> erase(detail::RegionImpl* r);
std::size_t count() noexcept;
// Registers what the table does around fork() (once; idempotent).
void register_fork_hooks() noexcept;

// The signal-path fault handler and describer registered with the dispatcher (fault_sig.cpp).
Disposition handle_fault(FaultContext& ctx, void* data);
std::size_t describe(std::uintptr_t addr, char* buf, std::size_t cap, void* data);

// PROT_* bits for Perm bits. Async-signal-safe.
int prot_of(unsigned perms) noexcept;

}  // namespace faultline::region
