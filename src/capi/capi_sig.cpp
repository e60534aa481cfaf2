// capi/capi_sig.cpp: the parts of the C interface that run in signal context (context accessors, the
// adapters that call C handlers, barriers, provider fills and preemption handlers). Signal path.
#include "capi/capi.hpp"

#include "faultline/emulate.hpp"
#include "faultline/inject.hpp"
#include "faultline/regs.hpp"
#include "faultline/region.hpp"

namespace {

faultline::FaultContext& cxx(fl_context* c) { return *reinterpret_cast<faultline::FaultContext*>(c); }
const faultline::FaultContext& cxx(const fl_context* c) { return *reinterpret_cast<const faultline::FaultContext*>(c); }

}  // namespace

namespace faultline::capi {

fl_context* to_c(FaultContext& ctx) noexcept { return reinterpret_cast<fl_context*>(&ctx); }

Disposition handler_adapter(FaultContext& ctx, void* data) {
  auto* h = static_cast<HandlerBox*>(data);
  return h->fn(to_c(ctx), h->data) == FL_RESOLVED ? Disposition::resolved : Disposition::declined;
}

fl_region_info to_c(const RegionInfo& r) noexcept {
  return fl_region_info{r.name, r.base, r.size, static_cast<fl_policy>(r.policy), r.perms};
}

Disposition barrier_adapter(FaultContext& ctx, const RegionInfo& region, void* data) {
  auto* box = static_cast<RegionBox*>(data);
  const fl_region_info info = to_c(region);
  return box->barrier(to_c(ctx), &info, box->barrier_data) == FL_RESOLVED ? Disposition::resolved
                                                                          : Disposition::declined;
}

FillStatus fill_adapter(const FillRequest& req, void* data) {
  auto* box = static_cast<RegionBox*>(data);
  const fl_fill_request c{to_c(req.region), req.offset, req.length, static_cast<fl_access>(req.access),
                          req.pc, req.tid, req.dest};
  const char* reason = nullptr;
  const int err = box->fill(&c, box->fill_data, &reason);
  return FillStatus{err, reason};
}

void preempt_adapter(FaultContext& ctx, void* data) {
  auto* box = static_cast<PreemptBox*>(data);
  box->fn(to_c(ctx), box->data);
}

}  // namespace faultline::capi

extern "C" {

int fl_installed(void) { return faultline::installed() ? 1 : 0; }
void fl_leave_handler(void) { faultline::leave_handler(); }
int fl_in_handler(void) { return faultline::in_handler() ? 1 : 0; }
fl_counters fl_trap_counters(int sig) {
  const faultline::TrapCounters c = faultline::counters(sig);
  return fl_counters{c.seen, c.resolved, c.passed, c.stack_overflows};
}

int fl_context_signal(const fl_context* ctx) { return cxx(ctx).signal(); }
int fl_context_code(const fl_context* ctx) { return cxx(ctx).code(); }
uintptr_t fl_context_address(const fl_context* ctx) { return cxx(ctx).address(); }
fl_access fl_context_access(const fl_context* ctx) { return static_cast<fl_access>(cxx(ctx).access()); }
uintptr_t fl_context_pc(const fl_context* ctx) { return cxx(ctx).pc(); }
uintptr_t fl_context_sp(const fl_context* ctx) { return cxx(ctx).sp(); }
unsigned fl_reg_count(void) { return static_cast<unsigned>(faultline::Reg::count); }
const char* fl_reg_name(unsigned index) {
  return index < fl_reg_count() ? faultline::reg_name(static_cast<faultline::Reg>(index)) : "?";
}
uint64_t fl_context_reg(const fl_context* ctx, unsigned index) {
  return index < fl_reg_count() ? cxx(ctx).reg(static_cast<faultline::Reg>(index)) : 0;
}
int fl_context_set_reg(fl_context* ctx, unsigned index, uint64_t value) {
  if (index >= fl_reg_count()) return FL_EINVAL;
  return cxx(ctx).set_reg(static_cast<faultline::Reg>(index), value) ? 0 : FL_EINVAL;
}
void fl_context_set_pc(fl_context* ctx, uintptr_t pc) { cxx(ctx).set_pc(pc); }
int fl_context_vector_reg(const fl_context* ctx, unsigned index, uint8_t out[16]) {
  return cxx(ctx).vector_reg(index, out) ? 0 : FL_EINVAL;
}
int fl_context_set_vector_reg(fl_context* ctx, unsigned index, const uint8_t in[16]) {
  return cxx(ctx).set_vector_reg(index, in) ? 0 : FL_EINVAL;
}
void* fl_context_ucontext(fl_context* ctx) { return cxx(ctx).ucontext(); }

void fl_preempt_disable(void) { faultline::preempt::disable(); }

int fl_inject_call(fl_context* ctx, void (*fn)(void*), void* arg) {
  return static_cast<int>(faultline::inject_call(cxx(ctx), fn, arg));
}

}  // extern "C"

namespace faultline::capi {

fl_thread_stats to_c(const ThreadStats& t) noexcept {
  return fl_thread_stats{t.tid, t.faults, t.fills, t.pages_filled, t.readahead_pages, t.failures, t.pages_evicted,
                         t.pages_written_back, t.fill_ns};
}

}  // namespace faultline::capi

extern "C" void fl_this_thread_stats(fl_thread_stats* out) {
  if (out != nullptr) *out = faultline::capi::to_c(faultline::this_thread_stats());
}

extern "C" const char* fl_emulate_status_name(fl_emulate_status status) {
  return faultline::emulate_status_name(static_cast<faultline::EmulateStatus>(status));
}

extern "C" fl_emulate_status fl_emulate(fl_context* ctx, uintptr_t target) {
  return static_cast<fl_emulate_status>(faultline::emulate(cxx(ctx), target));
}

extern "C" fl_emulate_status fl_heal(fl_context* ctx, fl_forward_fn forward, void* data) {
  return static_cast<fl_emulate_status>(faultline::heal(cxx(ctx), forward, data));
}
