// region/table.hpp: the region table: which region holds an address.
//
// Two levels of immutable sorted arrays: a top array of leaves (each leaf at most kLeafCap entries,
// with the first base of each leaf beside it) published through one atomic pointer. A writer copies
// the top array and the one leaf it changes, publishes, waits out the trap epoch, then frees the old
// versions: O(n / kLeafCap + kLeafCap) per update instead of O(n), so 100 000 regions register in well
// under a second, and lookup is two branch-free binary searches (a mispredicted branch costs more than
// the cache line it guards). Readers (lookup) run in signal context inside a dispatch (table_sig.cpp);
// writers take the table mutex (table.cpp).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

#include "faultline/result.hpp"
#include "region/impl.hpp"

namespace faultline::region {

constexpr std::size_t kLeafCap = 128;

// Structure of arrays: the lookup's binary search reads only `base` (1 KiB per leaf).
struct Leaf {
  std::size_t n = 0;
  std::uintptr_t base[kLeafCap];
  std::uintptr_t end[kLeafCap];
  detail::RegionImpl* r[kLeafCap];
};
struct Top {
  std::vector<const Leaf*> leaf;
  std::vector<std::uintptr_t> first;  // first[i] == leaf[i]->base[0]
};

extern std::atomic<const Top*> g_top;

// The region that contains addr, or null. Async-signal-safe; call inside a dispatch, or holding the
// trap epoch (it keeps what this returns alive), or holding the table mutex.
detail::RegionImpl* lookup(std::uintptr_t addr) noexcept;

// Writers. Every call below needs table_mutex() held.
std::mutex& table_mutex() noexcept;
// The first registered region overlapping [base, end), or null.
const detail::RegionImpl* find_overlap(std::uintptr_t base, std::uintptr_t end);
// Publishes a table with `r` added / removed, and waits until no fault handler can still see the old
// one. On failure the table is as it was.
Result<void> insert(detail::RegionImpl* r);
Result<void> erase(detail::RegionImpl* r);
std::size_t count() noexcept;

// The signal-path fault handler and describer registered with the dispatcher (fault_sig.cpp).
Disposition handle_fault(FaultContext& ctx, void* data);
std::size_t describe(std::uintptr_t addr, char* buf, std::size_t cap, void* data);

// PROT_* bits for Perm bits. Async-signal-safe.
int prot_of(unsigned perms) noexcept;

}  // namespace faultline::region
