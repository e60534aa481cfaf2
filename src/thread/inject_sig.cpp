// thread/inject_sig.cpp: inject_call, the architecture-neutral face of call injection (signal path).
#include "faultline/inject.hpp"

#include "arch/arch.hpp"
#include "thread/state.hpp"

namespace faultline {

const char* inject_status_name(InjectStatus s) noexcept {
  switch (s) {
    case InjectStatus::ok: return "ok";
    case InjectStatus::no_fp_state: return "no_fp_state";
    case InjectStatus::no_stack_room: return "no_stack_room";
    case InjectStatus::on_altstack: return "on_altstack";
    case InjectStatus::no_context: return "no_context";
  }
  return "?";
}

InjectStatus inject_call(FaultContext& ctx, void (*fn)(void*), void* arg) noexcept {
  ucontext_t* uc = ctx.ucontext();
  if (uc == nullptr || fn == nullptr) return InjectStatus::no_context;
  // The room check needs the bounds of the stack the interrupted code runs on: known for an attached
  // thread on its own stack (not the main thread's, which grows on demand); unknown otherwise (a
  // user-level thread's stack), then not checked.
  std::uintptr_t stack_lo = 0;
  const std::uintptr_t sp = ctx.sp();
  if (const thread::ThreadState* ts = thread::current();
      ts != nullptr && !ts->is_main && sp > ts->stack_lo && sp <= ts->stack_hi) {
    stack_lo = ts->stack_lo;
  }
  switch (arch::Current::inject_call(*uc, fn, arg, stack_lo)) {
    case 0: return InjectStatus::ok;
    case -1: return InjectStatus::no_fp_state;
    case -2: return InjectStatus::no_stack_room;
    default: return InjectStatus::on_altstack;
  }
}

}  // namespace faultline
