// faultline/policy.hpp: what a fault in a region becomes: the policies, permissions, and what a
// barrier or a store learns about its region.
//
//   guard         every access is an error: it goes on to the report and the previous action, which
//                 names the region;
//   zero_fill     the first touch of a page makes it accessible with the region's permissions and
//                 zero-filled (`fault_around` pages per fault);
//   provider      content-initialised: the region's store (or fill function) writes the pages on first
//                 touch, in the faulting thread's signal handler on the signal backend (so it must be
//                 async-signal-safe there) or on faultline's handler thread on userfaultfd;
//   pager         external pager: a Pager thread runs the store's fill as ordinary code while the
//                 faulting thread waits (faultline/pager.hpp);
//   track_dirty   pages start write-protected; the first write to each marks it dirty;
//                 Region::collect_dirty() returns the dirty pages and re-arms them;
//   barrier       the region's barrier function gets the fault context and decides: the read or write
//                 barrier of a concurrent relocating collector.
//
//   faultline::RegionOptions o;
//   o.policy = faultline::Policy::barrier;
//   o.barrier = [](faultline::FaultContext& ctx, const faultline::RegionInfo& r, void*) {
//     return forward(ctx, r) ? faultline::Disposition::resolved : faultline::Disposition::declined;
//   };
//
// Async-signal-safety: policy_name() is; barrier functions run in signal context.
// Thread-safety: the types here are plain values.
#pragma once

#include <cstddef>
#include <cstdint>

#include "faultline/context.hpp"
#include "faultline/trap.hpp"

namespace faultline {

enum class Policy : std::uint8_t { guard, zero_fill, provider, pager, track_dirty, barrier };
// "guard", "zero_fill", "provider", "pager", "track_dirty", "barrier"; "?" for anything else.
// Async-signal-safe.
const char* policy_name(Policy p) noexcept;

// Region permissions: what an access may do once its page is resolved.
enum Perm : unsigned { perm_none = 0, perm_read = 1, perm_write = 2, perm_exec = 4 };

// What a barrier function or a store learns about its region.
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

}  // namespace faultline
