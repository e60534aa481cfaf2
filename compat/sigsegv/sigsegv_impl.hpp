// compat/sigsegv/sigsegv_impl.hpp: shared between the two halves of the libsigsegv compatibility
// library (sigsegv.cpp: installing and registering; sigsegv_sig.cpp: the signal path). Internal.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

#include "compat/sigsegv/sigsegv.h"
#include "core/epoch.hpp"
#include "faultline/trap.hpp"

namespace faultline::compat {

extern std::atomic<sigsegv_handler_t> g_user;
extern std::atomic<stackoverflow_handler_t> g_overflow;

Disposition on_fault(FaultContext& ctx, void* data);
Disposition on_overflow(FaultContext& ctx, const StackOverflow& info, void* data);

struct Area {
  std::uintptr_t base;
  std::size_t len;
  sigsegv_area_handler_t handler;
  void* arg;
  void* ticket;  // identifies the registration
};

// An immutable sorted array of areas, replaced as a whole by writers.
struct AreaTable {
  std::vector<Area> areas;  // sorted by base; read-only once published
};

struct DispatcherImpl {
  std::mutex mutex;  // writers
  std::atomic<const AreaTable*> table{nullptr};
  core::EpochDomain epoch;
};

int dispatch(DispatcherImpl& d, std::uintptr_t addr) noexcept;

}  // namespace faultline::compat
