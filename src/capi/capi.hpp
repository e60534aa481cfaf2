// capi/capi.hpp: what the C interface's two halves (capi.cpp, capi_sig.cpp) share. Internal.
#pragma once

#include "faultline/faultline.h"
#include "faultline/preempt.hpp"
#include "faultline/region.hpp"
#include "faultline/trap.hpp"

namespace faultline::capi {

// A C handler and its data, registered through handler_adapter.
struct HandlerBox {
  fl_handler fn;
  void* data;
};

// What a region's C callbacks need; owned by the fl_region.
struct RegionBox {
  fl_barrier_fn barrier = nullptr;
  void* barrier_data = nullptr;
  fl_fill_fn fill = nullptr;
  void* fill_data = nullptr;
};

struct PreemptBox {
  fl_preempt_handler fn;
  void* data;
};

fl_context* to_c(FaultContext& ctx) noexcept;
fl_region_info to_c(const RegionInfo& r) noexcept;
fl_thread_stats to_c(const ThreadStats& t) noexcept;
Disposition handler_adapter(FaultContext& ctx, void* data);
Disposition barrier_adapter(FaultContext& ctx, const RegionInfo& region, void* data);
FillStatus fill_adapter(const FillRequest& req, void* data);
void preempt_adapter(FaultContext& ctx, void* data);

}  // namespace faultline::capi
