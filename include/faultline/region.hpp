// faultline/region.hpp: windows of the address space with a policy for their faults.
//
// A region is a page-aligned range that faultline owns (reserve_region: it maps the range itself) or
// that the caller mapped (adopt_region). A fault inside it is resolved by the region's policy:
//   guard         every access is an error: the fault goes on to the report and the previous action,
//                 which names the region;
//   zero_fill     the first touch of a page makes it accessible with the region's permissions and
//                 zero-filled; `fault_around` pages are resolved per fault (mprotect + MADV_POPULATE in
//                 one go, so one signal replaces up to N demand-zero faults);
//   track_writes  pages start write-protected; the first write to each page marks it dirty and makes it
//                 writable; collect_dirty() returns the dirty pages and write-protects them again;
//   barrier       the region's barrier function gets the fault context and decides (unprotect pages,
//                 rewrite registers, resume elsewhere, or decline): the read/write barrier of a
//                 concurrent relocating collector.
// An access that the region's permissions forbid (a write into a read-only region, an instruction
// fetch from a non-executable one) is never resolved: it reaches the crash report, which names the
// region, and then the previous action.
//
// Creating a region installs faultline's dispatcher (install()) if needed.
//
// Lookup: the table is a two-level copy-on-write array read without locks from signal handlers;
// register/unregister take a mutex, publish a new version and free the old one once no fault handler
// can still see it (the trap's epoch, see core/epoch.hpp). Lookup is O(log n).
//
// Thread-safety: every function here is thread-safe; none is async-signal-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "faultline/context.hpp"
#include "faultline/result.hpp"
#include "faultline/trap.hpp"

namespace faultline {

enum class Policy : std::uint8_t { guard, zero_fill, track_writes, barrier };
// "guard", "zero_fill", "track_writes", "barrier".
const char* policy_name(Policy p) noexcept;

// Region permissions (what an access may do once its page is resolved).
enum Perm : unsigned { perm_none = 0, perm_read = 1, perm_write = 2, perm_exec = 4 };

// What a barrier function learns about its region.
struct RegionInfo {
  const char* name;
  std::uintptr_t base;
  std::size_t size;
  Policy policy;
  unsigned perms;
};

// A barrier: runs in signal context for every fault in its region. Return `resolved` after making the
// access possible (or moving the thread elsewhere), `declined` to let the fault go on.
using BarrierFn = Disposition (*)(FaultContext& ctx, const RegionInfo& region, void* data);

struct RegionOptions {
  std::string name = "region";     // shown in reports; at most 63 bytes are kept
  Policy policy = Policy::zero_fill;
  unsigned perms = perm_read | perm_write;
  std::size_t fault_around = 1;    // zero_fill: pages resolved per fault, 1..512
  BarrierFn barrier = nullptr;     // required for Policy::barrier
  void* barrier_data = nullptr;
};

namespace detail {
struct RegionImpl;
}

// A registered region. Destroying it unregisters the region (and unmaps a reserved range) after every
// fault handler that may be using it has left.
class [[nodiscard]] Region {
 public:
  Region() = default;
  Region(Region&& o) noexcept : impl_(o.impl_) { o.impl_ = nullptr; }
  Region& operator=(Region&& o) noexcept;
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;
  ~Region() { (void)reset(); }

  bool valid() const noexcept { return impl_ != nullptr; }
  void* data() const noexcept;
  std::size_t size() const noexcept;
  RegionInfo info() const noexcept;

  // track_writes: the indices of the pages written since the last call, ascending, and re-arms them.
  // Errc::invalid_argument for other policies.
  Result<std::vector<std::size_t>> collect_dirty();

  // Unregisters now. Errc::busy from inside a fault handler.
  Result<void> reset();

 private:
  friend Result<Region> reserve_region(std::size_t, const RegionOptions&);
  friend Result<Region> adopt_region(void*, std::size_t, const RegionOptions&);
  explicit Region(detail::RegionImpl* impl) : impl_(impl) {}
  detail::RegionImpl* impl_ = nullptr;
};

// Maps `size` bytes (a multiple of the page size) for a new region.
Result<Region> reserve_region(std::size_t size, const RegionOptions& opts);
// Registers memory the caller mapped: [addr, addr + size), page-aligned, entirely mapped, overlapping
// no other region. zero_fill drops the current contents (MADV_DONTNEED) and protects the range.
Result<Region> adopt_region(void* addr, std::size_t size, const RegionOptions& opts);

// Resolves the pages of [addr, addr + len) for `access` before a system call touches them (a system
// call that meets a protected page fails with EFAULT instead of faulting). Addresses outside every
// region are ignored. Errc::invalid_argument for an access the region forbids.
Result<void> prefault(const void* addr, std::size_t len, Access access);

// Number of registered regions.
std::size_t region_count();

}  // namespace faultline
