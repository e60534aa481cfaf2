// thread/state.hpp: per-thread state, allocated when a thread attaches (never in signal context).
//
// Signal handlers reach it through an initial-exec TLS pointer set at attach (no lazy TLS, no
// __tls_get_addr), so reading it from a handler is one load. Threads that never attached read null.
#pragma once

#include <signal.h>
#include <time.h>
#include <ucontext.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "faultline/context.hpp"

namespace faultline::thread {

constexpr std::uint32_t kRunning = 0, kBlocking = 1, kBlockingStopped = 2;
constexpr std::uint32_t kBlockingWaiter = 4;  // with kBlockingStopped: the thread waits at the exit

struct ThreadState {
  long tid = 0;
  // The thread's stack: [stack_lo, stack_hi); the guard area below stack_lo is `guard_size` bytes.
  std::uintptr_t stack_lo = 0;
  std::uintptr_t stack_hi = 0;
  std::size_t guard_size = 0;
  // The alternate signal stack in use: [altstack_lo, altstack_hi). `altstack_owned`: faultline mapped
  // it (with a guard page at altstack_map) and removes it at detach.
  std::uintptr_t altstack_lo = 0;
  std::uintptr_t altstack_hi = 0;
  void* altstack_map = nullptr;
  std::size_t altstack_map_size = 0;
  bool altstack_owned = false;
  stack_t altstack_replaced{nullptr, SS_DISABLE, 0};  // what the thread had before (put back at detach)
  bool is_main = false;
  // Attach nesting count (attach() on an attached thread increments it).
  int attach_count = 0;

  // Stop-the-world (thread/world.cpp, thread/world_sig.cpp).
  std::atomic<std::uint32_t> ack{0};        // the last stop epoch acknowledged (futex word)
  std::atomic<std::uint32_t> blocking{0};   // kRunning / kBlocking / kBlockingStopped (futex word)
  int blocking_depth = 0;                   // BlockingRegion nesting (owner thread only)
  ucontext_t stop_uc{};                     // the context copied at the stop, fpregs -> xstate
  unsigned char* xstate = nullptr;          // FP/SIMD state copied at the stop (xstate_cap bytes)
  std::size_t xstate_cap = 0, xstate_len = 0;
  FaultContext stop_ctx{nullptr};
  std::uintptr_t stop_sp = 0;               // stack pointer at the stop
  std::uintptr_t stop_main_sp = 0;          // stopped on the altstack inside a fault handler: the SP the
                                            //   fault interrupted on the thread's own stack (0: unknown)
  bool stop_on_altstack = false;
  ucontext_t blocking_uc{};                 // registers saved on entering a BlockingRegion
  std::uintptr_t blocking_sp = 0;
  int stopped_by = 0;                       // controller's bookkeeping: 0 no, 1 signal, 2 blocking region
  int stop_send_error = 0;                  // controller's bookkeeping: errno of the last failed tgkill, or 0

  // Preemption (thread/preempt.cpp, thread/preempt_sig.cpp).
  timer_t timers[2] = {};                   // per clock (cpu_time, wall)
  bool timer_made[2] = {false, false};
  std::atomic<std::uint32_t> preempt_enabled{0};
  std::atomic<std::uint32_t> preempt_pending{0};  // expired while disabled (delivered at enable)
  std::atomic<std::uint32_t> preempt_running{0};  // the handler is running (a new expiry is dropped)
  void (*preempt_fn)(FaultContext&, void*) = nullptr;
  void* preempt_data = nullptr;
  // Registry links (guarded by the registry mutex; never read in signal context).
  ThreadState* prev = nullptr;
  ThreadState* next = nullptr;
};

// The calling thread's state, or null. Async-signal-safe (one initial-exec TLS load).
ThreadState* current() noexcept;
void set_current(ThreadState* ts) noexcept;


}  // namespace faultline::thread
