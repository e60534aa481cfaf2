// thread/preempt_sig.cpp: the preemption signal's handler (signal path). See faultline/preempt.hpp.
#include <cerrno>

#include "faultline/preempt.hpp"
#include "thread/preempt.hpp"
#include "thread/state.hpp"

namespace faultline::preempt::detail {

void on_preempt_signal(int sig, siginfo_t* info, void* uc) noexcept {
  const int saved_errno = errno;
  thread::ThreadState* ts = thread::current();
  if (ts != nullptr) {
    if (ts->preempt_enabled.load(std::memory_order_acquire) == 0) {
      ts->preempt_pending.store(1, std::memory_order_release);  // delivered at the next enable()
    } else if (ts->preempt_running.exchange(1, std::memory_order_acq_rel) == 0) {
      ts->preempt_enabled.store(0, std::memory_order_release);  // the budget is spent
      FaultContext ctx(sig, info, static_cast<ucontext_t*>(uc));
      ts->preempt_fn(ctx, ts->preempt_data);
      ts->preempt_running.store(0, std::memory_order_release);
    }  // else: an expiry while the handler runs is dropped (no flood)
  }
  errno = saved_errno;
}

}  // namespace faultline::preempt::detail

namespace faultline::preempt {

void disable() noexcept {
  if (thread::ThreadState* ts = thread::current(); ts != nullptr) {
    ts->preempt_enabled.store(0, std::memory_order_release);
  }
}

bool enabled() noexcept {
  const thread::ThreadState* ts = thread::current();
  return ts != nullptr && ts->preempt_enabled.load(std::memory_order_acquire) != 0;
}

}  // namespace faultline::preempt
