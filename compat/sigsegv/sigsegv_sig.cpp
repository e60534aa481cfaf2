// compat/sigsegv/sigsegv_sig.cpp: libsigsegv's handlers and dispatcher lookup on faultline (signal
// path: faultline's raw layer and atomics only).
#include "compat/sigsegv/sigsegv_impl.hpp"

namespace faultline::compat {

constinit std::atomic<sigsegv_handler_t> g_user{nullptr};
constinit std::atomic<stackoverflow_handler_t> g_overflow{nullptr};

Disposition on_fault(FaultContext& ctx, void*) {
  const sigsegv_handler_t h = g_user.load(std::memory_order_acquire);
  if (h == nullptr) return Disposition::declined;
  return h(reinterpret_cast<void*>(ctx.address()), 1) != 0 ? Disposition::resolved : Disposition::declined;
}

Disposition on_overflow(FaultContext& ctx, const StackOverflow& info, void*) {
  if (const sigsegv_handler_t h = g_user.load(std::memory_order_acquire);
      h != nullptr && h(reinterpret_cast<void*>(ctx.address()), 0) != 0) {
    return Disposition::resolved;
  }
  const stackoverflow_handler_t s = g_overflow.load(std::memory_order_acquire);
  if (s == nullptr) return Disposition::declined;
  // In the guard area just below the stack (the usual overflow) the program can recover by unwinding;
  // further away, something else is wrong.
  const int emergency = info.fault_address + (std::uintptr_t{64} << 10) >= info.stack_lo ? 0 : 1;
  s(emergency, ctx.ucontext());
  return Disposition::declined;  // it must not return; if it does, the overflow is reported and fatal
}

int dispatch(DispatcherImpl& d, std::uintptr_t addr) noexcept {
  sigsegv_area_handler_t fn = nullptr;
  void* arg = nullptr;
  {
    core::EpochReader reader(d.epoch);
    const AreaTable* t = d.table.load(std::memory_order_acquire);
    if (t == nullptr || t->areas.empty()) return 0;
    const Area* areas = t->areas.data();
    std::size_t lo = 0, hi = t->areas.size();  // last area whose base <= addr
    while (hi - lo > 1) {
      const std::size_t mid = (lo + hi) / 2;
      if (areas[mid].base <= addr) lo = mid;
      else hi = mid;
    }
    const Area& a = areas[lo];
    if (addr < a.base || addr - a.base >= a.len) return 0;
    fn = a.handler;
    arg = a.arg;
  }
  // Called outside the epoch: a handler that leaves by longjmp must not leave a reader count behind.
  return fn(reinterpret_cast<void*>(addr), arg);
}

}  // namespace faultline::compat

extern "C" {

int libsigsegv_version = LIBSIGSEGV_VERSION;

int sigsegv_leave_handler(void (*continuation)(void*, void*, void*), void* a1, void* a2, void* a3) {
  faultline::leave_handler();
  continuation(a1, a2, a3);
  return 1;
}

int sigsegv_dispatch(sigsegv_dispatcher* dispatcher, void* fault_address) {
  if (dispatcher == nullptr || dispatcher->tree == nullptr) return 0;
  return faultline::compat::dispatch(*static_cast<faultline::compat::DispatcherImpl*>(dispatcher->tree),
                                     reinterpret_cast<std::uintptr_t>(fault_address));
}

}  // extern "C"
