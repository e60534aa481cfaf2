// tests/thread/test_inject.cpp: call injection: ordinary code runs in an interrupted thread, then every
// register survives.
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

// --- call injection --------------------------------------------------------------------------------

std::atomic<int> g_injected{0};
std::atomic<int> g_inject_status{-1};
std::atomic<int> g_fn_ran{0};
std::atomic<int> g_regs_ok{-1};
const SpinTable* g_table = nullptr;

void injected_fn(void* arg) {
  // Ordinary code: allocation, the C library, floating point and vector work (clobbering vector registers).
  std::vector<double> v(4096);
  std::iota(v.begin(), v.end(), 1.0);
  double sum = 0;
  for (double x : v) sum += std::sqrt(x);
  std::string s = std::to_string(sum);
  std::vector<char> big(1 << 16);
  std::memset(big.data(), 0x5a, big.size());
  auto* count = static_cast<std::atomic<int>*>(arg);
  count->fetch_add(s.empty() ? 0 : 1);
}

void inject_handler(int sig, siginfo_t* si, void* ucv) {
  FaultContext ctx(sig, si, static_cast<ucontext_t*>(ucv));
  if (reinterpret_cast<char*>(ctx.pc()) != faultline_test_spin_loop || g_injected.load() != 0) return;
  g_injected = 1;
  g_inject_status = static_cast<int>(inject_call(ctx, injected_fn, &g_fn_ran));
}

void check_then_exit_handler(int, siginfo_t*, void* ucv) {
  FaultContext ctx(static_cast<ucontext_t*>(ucv));
  if (reinterpret_cast<char*>(ctx.pc()) != faultline_test_spin_loop) return;
  bool ok = true;
  for (int i = 0; i < kGprs; ++i) {
    if (ctx.reg(kGprOrder[i]) != g_table->gpr[i]) ok = false;
  }
  for (unsigned i = 0; i < kVectorRegCount; ++i) {
    std::uint64_t v[2];
    if (!ctx.vector_reg(i, reinterpret_cast<std::uint8_t*>(v))) ok = false;
    if (v[0] != g_table->vec[2 * i] || v[1] != g_table->vec[2 * i + 1]) ok = false;
  }
  if ((ctx.flags() & kFlagsMask) != (kFlags & kFlagsMask)) ok = false;
  g_regs_ok = ok ? 1 : 0;
  ctx.set_pc(reinterpret_cast<std::uintptr_t>(faultline_test_spin_exit));
}

TEST(Inject, CallRunsOrdinaryCodeAndEveryRegisterSurvives) {
  if (kTsan) GTEST_SKIP() << kTsanDefersAsyncSignals;
  ChildResult r = run_child([] {
    install_handler(SIGUSR1, inject_handler);
    install_handler(SIGUSR2, check_then_exit_handler);
    static SpinTable table = make_table(3);
    g_table = &table;
    std::atomic<long> tid{0};
    std::thread t([&] {
      auto a = attach_thread();
      tid = gettid_();
      faultline_test_spin(table.gpr);
    });
    while (tid.load() == 0) std::this_thread::yield();
    if (!signal_until(tid.load(), SIGUSR1, [] { return g_injected.load() != 0; })) _exit(1);
    if (g_inject_status.load() != static_cast<int>(InjectStatus::ok)) _exit(2);
    for (long spin = 0; g_fn_ran.load() == 0; ++spin) {
      if (spin > 4'000'000'000L) _exit(3);
    }
    // The loop goes on, with every register as it was.
    if (!signal_until(tid.load(), SIGUSR2, [] { return g_regs_ok.load() != -1; })) _exit(4);
    t.join();
    if (g_regs_ok.load() != 1) _exit(5);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

TEST(Inject, RefusesWithoutAContext) {
  FaultContext none(nullptr);
  EXPECT_EQ(inject_call(none, injected_fn, nullptr), InjectStatus::no_context);
  EXPECT_STREQ(inject_status_name(InjectStatus::on_altstack), "on_altstack");
}

}  // namespace
}  // namespace faultline
