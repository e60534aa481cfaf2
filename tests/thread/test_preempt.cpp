// tests/thread/test_preempt.cpp: per-thread preemption budgets: a scheduler that switches away from an
// endless loop, a CPU-time budget that counts CPU time only, expiries while disabled, misuse, timers
// released at thread exit.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>
#include <numeric>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "faultline/inject.hpp"
#include "faultline/preempt.hpp"
#include "faultline/region.hpp"
#include "faultline/thread.hpp"
#include "faultline/trap.hpp"
#include "faultline/world.hpp"
#include "support/child.hpp"
#include "support/pages.hpp"
#include "support/spin.hpp"
#include "thread/state.hpp"

namespace faultline {
namespace {

using namespace test;  // the spin table and its helpers

// --- preemption ------------------------------------------------------------------------------------

// Green threads on one OS thread. Each runs an endless CPU-bound loop; only preemption (a wall-clock
// budget whose handler injects a call to the scheduler) switches between them.
struct Green {
  ucontext_t ctx;
  std::vector<char> stack;
  std::atomic<std::uint64_t> counter{0};
  unsigned slices = 0;
};
Green g_green[3];
ucontext_t g_main_ctx;
int g_current = -1;
std::atomic<bool> g_sched_done{false};

void preempt_handler(FaultContext& ctx, void*);

void arm() {
  if (!preempt::enable(std::chrono::microseconds(500), preempt_handler, nullptr, preempt::Clock::wall)) _exit(40);
}

void schedule(void*) {
  preempt::disable();
  const int from = g_current;
  bool all = true;
  for (auto& g : g_green) all = all && g.slices >= 5;
  if (all) {
    g_sched_done = true;
    swapcontext(&g_green[from].ctx, &g_main_ctx);  // never resumed
  }
  const int to = (from + 1) % 3;
  g_current = to;
  g_green[to].slices++;
  swapcontext(&g_green[from].ctx, &g_green[to].ctx);
  arm();  // resumed: this green thread's new slice
}

void preempt_handler(FaultContext& ctx, void*) {
  if (inject_call(ctx, schedule, nullptr) != InjectStatus::ok) _exit(41);
}

void green_body(int i) {
  arm();
  for (;;) g_green[i].counter.fetch_add(1, std::memory_order_relaxed);  // never yields
}

TEST(Preempt, SchedulerSwitchesAwayFromAnEndlessLoop) {
  if (kTsan) GTEST_SKIP() << kTsanDefersAsyncSignals;
  ChildResult r = run_child([] {
    auto self = attach_thread();
    for (int i = 0; i < 3; ++i) {
      Green& g = g_green[i];
      g.stack.resize(256 << 10);
      getcontext(&g.ctx);
      g.ctx.uc_stack.ss_sp = g.stack.data();
      g.ctx.uc_stack.ss_size = g.stack.size();
      g.ctx.uc_link = nullptr;
      makecontext(&g.ctx, reinterpret_cast<void (*)()>(green_body), 1, i);
    }
    g_current = 0;
    g_green[0].slices = 1;
    swapcontext(&g_main_ctx, &g_green[0].ctx);
    preempt::disable();
    if (!g_sched_done.load()) _exit(1);
    for (auto& g : g_green) {
      if (g.counter.load() == 0 || g.slices < 5) _exit(2);
    }
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

std::atomic<int> g_preempted{0};
void count_preemption(FaultContext&, void*) { g_preempted++; }

TEST(Preempt, ExpiryWhileDisabledIsDeliveredAtTheNextEnable) {
  ChildResult r = run_child([] {
    auto self = attach_thread();
    if (!preempt::enable(std::chrono::microseconds(200), count_preemption)) _exit(1);
    preempt::disable();
    // Wait until the budget has expired while disabled (the thread's pending flag).
    const thread::ThreadState* ts = thread::current();
    for (long spin = 0; ts->preempt_pending.load() == 0; ++spin) {
      if (spin > 4'000'000'000L) _exit(2);
    }
    if (g_preempted.load() != 0) _exit(3);
    if (!preempt::enable(std::chrono::seconds(100), count_preemption)) _exit(4);
    if (g_preempted.load() != 1) _exit(5);  // delivered by enable() itself
    if (preempt::enabled()) _exit(6);       // a delivered budget is spent
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// A CPU-time budget fires once the thread has used that much CPU, and only then: while the thread
// sleeps it does not fire (a wall-clock timer would), and when it fires the thread's CPU clock has
// passed the budget. The budget (20 ms) is five scheduler ticks here (4 ms); waits are bounded
// generously and no elapsed time is asserted.
struct CpuFire {
  std::atomic<int> calls{0};
  std::atomic<std::int64_t> cpu_ns{0};  // the thread's CPU clock when the handler ran
};
CpuFire g_cpu_fire;

std::int64_t thread_cpu_ns() {
  struct timespec ts {};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void on_cpu_budget(FaultContext&, void*) {
  g_cpu_fire.cpu_ns = thread_cpu_ns();  // clock_gettime is async-signal-safe
  g_cpu_fire.calls++;
}

TEST(Preempt, CpuTimeBudgetFiresAfterThatMuchCpu) {
  ChildResult r = run_child([] {
    auto self = attach_thread();
    constexpr auto kBudget = std::chrono::milliseconds(20);
    const std::int64_t start = thread_cpu_ns();
    if (!preempt::enable(kBudget, on_cpu_budget, nullptr, preempt::Clock::cpu_time)) _exit(1);
    // Asleep for 200 ms of wall-clock time, using next to no CPU: the budget must not fire.
    struct timespec nap {0, 200'000'000};
    while (nanosleep(&nap, &nap) != 0 && errno == EINTR) {
    }
    if (g_cpu_fire.calls.load() != 0) {
      std::fprintf(stderr, "fired while asleep, after %lld ns of CPU\n",
                   static_cast<long long>(g_cpu_fire.cpu_ns.load() - start));
      _exit(2);
    }
    // Spinning: it fires (bounded: 30 s of CPU time).
    while (g_cpu_fire.calls.load() == 0) {
      if (thread_cpu_ns() - start > 30'000'000'000LL) _exit(3);
    }
    const std::int64_t used = g_cpu_fire.cpu_ns.load() - start;
    if (used < std::chrono::nanoseconds(kBudget).count()) {
      std::fprintf(stderr, "fired after %lld ns of CPU, budget %lld\n", static_cast<long long>(used),
                   static_cast<long long>(std::chrono::nanoseconds(kBudget).count()));
      _exit(4);
    }
    if (g_cpu_fire.calls.load() != 1 || preempt::enabled()) _exit(5);  // one-shot: spent
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

TEST(Preempt, BadArgumentsAndUnattachedThreads) {
  ChildResult r = run_child([] {
    std::thread t([] {
      auto e = preempt::enable(std::chrono::milliseconds(1), count_preemption);
      if (e.ok() || e.error().code() != Errc::not_installed) _exit(1);
    });
    t.join();
    auto self = attach_thread();
    if (preempt::enable(std::chrono::milliseconds(0), count_preemption).ok()) _exit(2);
    if (preempt::enable(std::chrono::milliseconds(1), nullptr).ok()) _exit(3);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

std::size_t proc_timers() {
  std::ifstream f("/proc/self/timers");
  std::size_t n = 0;
  for (std::string line; std::getline(f, line);) n += line.rfind("ID:", 0) == 0;
  return n;
}

TEST(Preempt, ThreadsThatExitLeaveNoTimersBehind) {
  ChildResult r = run_child([] {
    const std::size_t before = preempt::timer_count(), proc_before = proc_timers();
    for (int round = 0; round < 10; ++round) {
      std::vector<std::thread> ts;
      for (int i = 0; i < 20; ++i) {
        ts.emplace_back([] {
          auto a = attach_thread();
          if (!preempt::enable(std::chrono::seconds(100), count_preemption, nullptr, preempt::Clock::cpu_time)) _exit(1);
          if (!preempt::enable(std::chrono::seconds(100), count_preemption, nullptr, preempt::Clock::wall)) _exit(2);
        });  // exits attached: the exit hook detaches and deletes the timers
      }
      for (auto& t : ts) t.join();
    }
    if (preempt::timer_count() != before) _exit(3);
    if (proc_timers() != proc_before) _exit(4);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

}  // namespace
}  // namespace faultline
