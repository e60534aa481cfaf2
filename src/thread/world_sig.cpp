// thread/world_sig.cpp: the stop signal's handler (signal path).
//
// Copies the interrupted context into the thread's state, acknowledges the stop epoch on the thread's
// own futex word, and sleeps until the resume epoch reaches it. See faultline/world.hpp.
#include <cerrno>
#include <climits>
#include <cstring>

#include "arch/arch.hpp"
#include "os/linux/syscall.hpp"
#include "thread/state.hpp"
#include "thread/world.hpp"
#include "trap/dispatcher.hpp"

namespace faultline::world::detail {

constinit WorldState g_world{};

namespace {

void capture(thread::ThreadState& ts, const ucontext_t& uc) noexcept {
  ts.xstate_len = arch::Current::capture(ts.stop_uc, uc, ts.xstate, ts.xstate_cap);
  ts.stop_ctx = FaultContext(&ts.stop_uc);
  ts.stop_sp = arch::Current::sp(uc);
  ts.stop_on_altstack = ts.altstack_hi != 0 && ts.stop_sp >= ts.altstack_lo && ts.stop_sp < ts.altstack_hi;
  ts.stop_main_sp = ts.stop_on_altstack ? trap::interrupted_sp() : 0;
}

}  // namespace

void on_stop_signal(int, siginfo_t*, void* ucv) noexcept {
  const int saved_errno = errno;
  thread::ThreadState* ts = thread::current();
  const std::uint32_t epoch = g_world.stop_epoch.load(std::memory_order_acquire);
  // Not attached, a duplicate (re-sent) signal for a stop already acknowledged, or no stop at all.
  if (ts == nullptr || ts->ack.load(std::memory_order_acquire) == epoch ||
      static_cast<std::int32_t>(g_world.resume_epoch.load(std::memory_order_acquire) - epoch) >= 0) {
    errno = saved_errno;
    return;
  }
  if (unsigned d = g_world.drop.load(std::memory_order_relaxed); d != 0) {
    if (g_world.drop.compare_exchange_strong(d, d - 1)) {  // testing: behave as if the signal was lost
      errno = saved_errno;
      return;
    }
  }
  capture(*ts, *static_cast<ucontext_t*>(ucv));
  ts->ack.store(epoch, std::memory_order_seq_cst);
  g_world.doorbell.fetch_add(1, std::memory_order_seq_cst);
  if (g_world.controller_waiting.exchange(0, std::memory_order_seq_cst) != 0) {
    os::raw_futex_wake(os::futex_word(g_world.doorbell), 1);
  }
  for (;;) {
    const std::uint32_t r = g_world.resume_epoch.load(std::memory_order_acquire);
    if (static_cast<std::int32_t>(r - epoch) >= 0) break;
    os::raw_futex_wait(os::futex_word(g_world.resume_epoch), r);
  }
  errno = saved_errno;
}

}  // namespace faultline::world::detail
