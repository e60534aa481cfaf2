// bench/bench_threads.cpp: Google Benchmark micro figures for threads.
//
// StopResume/faultline/N and StopResume/boehm/N: one world::stop + world::resume (resp. Boehm GC's
// GC_stop_world_external + GC_start_world_external) with N other threads spinning, all registered with
// both. PreemptEnableDisable: preempt::enable + preempt::disable on an armed thread.
// `faultline bench --only threads` has the same comparison as ratios with targets.
#include <benchmark/benchmark.h>
#define GC_THREADS
#define GC_NO_THREAD_REDIRECTS
#include <gc/gc.h>

#include <atomic>
#include <cstdlib>
#include <thread>
#include <vector>

#include "faultline/preempt.hpp"
#include "faultline/thread.hpp"
#include "faultline/trap.hpp"
#include "faultline/world.hpp"

namespace {

class Spinners {
 public:
  explicit Spinners(int n) {
    for (int i = 0; i < n; ++i) {
      threads_.emplace_back([this] {
        auto a = faultline::attach_thread();
        GC_stack_base sb{};
        GC_get_stack_base(&sb);
        GC_register_my_thread(&sb);
        ready_++;
        while (!quit_.load(std::memory_order_relaxed)) {
        }
        GC_unregister_my_thread();
      });
    }
    while (ready_.load() < n) std::this_thread::yield();
  }
  ~Spinners() {
    quit_ = true;
    for (auto& t : threads_) t.join();
  }

 private:
  std::atomic<bool> quit_{false};
  std::atomic<int> ready_{0};
  std::vector<std::thread> threads_;
};

void setup() {
  static bool done = [] {
    GC_INIT();
    GC_allow_register_threads();
    if (!faultline::install().ok()) std::abort();
    return true;
  }();
  (void)done;
}

void BM_StopResume_Faultline(benchmark::State& state) {
  setup();
  Spinners s(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    if (!faultline::world::stop().ok() || !faultline::world::resume().ok()) std::abort();
  }
}

void BM_StopResume_Boehm(benchmark::State& state) {
  setup();
  Spinners s(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    GC_stop_world_external();
    GC_start_world_external();
  }
}

void noop(faultline::FaultContext&, void*) {}

void BM_PreemptEnableDisable(benchmark::State& state) {
  setup();
  for (auto _ : state) {
    (void)faultline::preempt::enable(std::chrono::seconds(100), noop);
    faultline::preempt::disable();
  }
}

}  // namespace

BENCHMARK(BM_StopResume_Faultline)->Arg(1)->Arg(8)->Arg(64)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_StopResume_Boehm)->Arg(1)->Arg(8)->Arg(64)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_PreemptEnableDisable);
