// os/linux/maps.hpp: reading /proc/self/maps without malloc (signal path).
//
// Opens the file with the raw-syscall layer and parses it through a fixed stack buffer, one line at a
// time. Async-signal-safe; each call reads the file afresh (a fault path, not a hot one).
#pragma once

#include <cstddef>
#include <cstdint>

namespace faultline::os {

struct MapsEntry {
  std::uintptr_t start = 0, end = 0;
  char perms[5] = {};  // "rw-p"
  std::uint64_t offset = 0;
  std::uint64_t inode = 0;  // 0 for anonymous memory
  char path[256] = {};  // "" for anonymous memory, "[heap]", "[stack]", a file's path (truncated)
};

// Calls fn for each mapping until it returns false. Returns false if /proc/self/maps cannot be read.
bool for_each_mapping(bool (*fn)(const MapsEntry& e, void* ctx), void* ctx) noexcept;
// The mapping that contains addr. Returns false when none does (or the file cannot be read).
bool find_mapping(std::uintptr_t addr, MapsEntry* out) noexcept;

// True when [start, end) is entirely covered by mappings that are all anonymous and private
// (inode 0) or all of the file with that inode. The cheap identity check faultline makes before it acts
// on a region's memory again (reset, discard, evict, a protection batch): after a program unmapped a
// region behind faultline's back, the address range is empty or holds someone else's mapping.
bool range_matches(std::uintptr_t start, std::uintptr_t end, std::uint64_t inode) noexcept;

// How many mappings the process has (lines of /proc/self/maps), and the kernel's limit
// (/proc/sys/vm/max_map_count); -1 when unknown. For the cause of an mprotect that fails with ENOMEM.
long map_count() noexcept;
long max_map_count() noexcept;

// Writes "ENOMEM: the process has N mappings and vm.max_map_count is M; ..." (the advice for a region
// whose protection changes split its mapping too often) into buf. Async-signal-safe.
void map_limit_text(char* buf, std::size_t cap) noexcept;

}  // namespace faultline::os
