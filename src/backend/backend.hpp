// backend/backend.hpp: choosing a region's backend and creating its record. The operations every backend
// provides are RegionImpl's virtual functions (region/impl.hpp); this is the other half of the seam: the
// selector (which backend, and why) and the factories. Not signal path.
//
// The region layer's API (region/api.cpp) calls these; nothing else needs to know which backends exist.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "faultline/region.hpp"
#include "region/impl.hpp"

namespace faultline::backend {

struct Choice {
  Backend backend = Backend::signals;
  std::string reason;  // "signals (requested)", "userfaultfd (handler thread)", "signals: <why not>"
  bool shmem_cache = false;  // userfaultfd: the pages live in a shmem cache (FillPath), as the reason says
};

// Chooses the backend for a region about to be created (validated options). An error when
// Backend::userfaultfd was requested and cannot be had, or when the options need what the chosen backend
// cannot offer (write-back on signals, a store that is not async-signal-safe where fills run in a
// handler).
Result<Choice> select(const RegionOptions& o, bool adopted);

// Maps `size` bytes on the chosen backend and returns the region's record, not yet attached or
// published. Nothing stays mapped on failure.
Result<std::unique_ptr<detail::RegionImpl>> create(const Choice& choice, std::size_t size, const RegionOptions& o);

// The record of a region over memory the caller mapped (signal backend). Changes nothing yet.
std::unique_ptr<detail::RegionImpl> adopt(const Choice& choice, void* addr, std::size_t size, const RegionOptions& o);

}  // namespace faultline::backend
