// faultline/inject.hpp: making an interrupted thread run ordinary code, then resume exactly where it was.
//
// A signal handler may not allocate, lock or call most of the C library. inject_call() lets it hand
// that work to the interrupted thread itself: once the handler returns, the thread calls fn(arg) on its
// own stack (below the red zone, 16-byte aligned), as ordinary code that may allocate, lock, switch
// user-level contexts (a scheduler), or be interrupted and injected again. When fn returns, a trampoline
// restores every register (general, flags, FP/SIMD state) and the signal mask and resumes at the
// interrupted instruction, as if nothing had happened.
//
// x86-64. The restore goes through rt_sigreturn with a copy of the interrupted signal frame, so it is
// exact for everything the kernel saves in a signal frame. Not available when the interrupted code ran
// on the alternate signal stack (rt_sigreturn would refuse it) or the stack has no room.
#pragma once

#include "faultline/context.hpp"

namespace faultline {

enum class InjectStatus {
  ok,
  no_fp_state,       // the signal frame carries no FP/SIMD state to restore
  no_stack_room,     // the interrupted stack has less than 4 KiB left below what the copy needs
  on_altstack,       // the interrupted code was running on the alternate signal stack
  no_context,        // the FaultContext has no ucontext (not from a signal handler)
};
// "ok", "no_fp_state", ... Async-signal-safe.
const char* inject_status_name(InjectStatus s) noexcept;

// Call from a signal handler (faultline fault handler, preemption handler, or your own sa_sigaction
// handler wrapped in a FaultContext) before it returns. Injecting twice into the same context runs the
// second call first, then the first. Async-signal-safe.
InjectStatus inject_call(FaultContext& ctx, void (*fn)(void*), void* arg) noexcept;

}  // namespace faultline
