// bench/bench_uffd.cpp: Google Benchmark micro figures for the userfaultfd backend.
//
// FirstTouch/*: one iteration touches 1024 fresh pages (sequentially, or in a random order), timed per
// page; the pages are dropped again outside the timing. Kernel is the kernel's own demand-zero fault
// (the baseline); Signals is a zero_fill region on the signal backend with 64 pages per fault;
// UffdSingle fills one page per fault; UffdReadahead grows the window up to 64 pages.
// DirtyEpoch/*: 1 638 writes to random pages among 16 384, then a harvest: mprotect + SIGSEGV,
// synchronous userfaultfd write-protect, WP_ASYNC + PAGEMAP_SCAN. `faultline bench` prints the ratios.
#include <benchmark/benchmark.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <numeric>
#include <random>
#include <vector>

#include "faultline/region.hpp"

namespace {

constexpr std::size_t kPages = 1024;
const std::size_t kPage = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));

std::vector<std::size_t> order(bool random) {
  std::vector<std::size_t> o(kPages);
  std::iota(o.begin(), o.end(), 0);
  if (random) std::shuffle(o.begin(), o.end(), std::mt19937_64(1));
  return o;
}

template <class Drop>
void touch_loop(benchmark::State& state, char* p, const std::vector<std::size_t>& o, Drop drop) {
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t i : o) p[i * kPage] = 1;
    state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / kPages);
    drop();
  }
}

void BM_FirstTouch_Kernel(benchmark::State& state) {
  auto* p = static_cast<char*>(mmap(nullptr, kPages * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  touch_loop(state, p, order(state.range(0) != 0), [&] { madvise(p, kPages * kPage, MADV_DONTNEED); });
  munmap(p, kPages * kPage);
}

void region_touch(benchmark::State& state, faultline::Backend backend, std::size_t fault_around, std::size_t readahead) {
  faultline::RegionOptions o;
  o.name = "bench";
  o.backend = backend;
  o.fault_around = fault_around;
  o.readahead_max = readahead;
  auto r = faultline::reserve_region(kPages * kPage, o);
  if (!r.ok()) {
    state.SkipWithError(r.error().message().c_str());
    return;
  }
  touch_loop(state, static_cast<char*>(r->data()), order(state.range(0) != 0), [&] { (void)r->discard(0, kPages); });
}

void BM_FirstTouch_Signals(benchmark::State& s) { region_touch(s, faultline::Backend::signals, 64, 64); }
void BM_FirstTouch_UffdSingle(benchmark::State& s) { region_touch(s, faultline::Backend::userfaultfd, 1, 1); }
void BM_FirstTouch_UffdReadahead(benchmark::State& s) { region_touch(s, faultline::Backend::userfaultfd, 1, 64); }

void dirty_epoch(benchmark::State& state, faultline::Backend backend, faultline::WriteTracking mode) {
  constexpr std::size_t n = 16384, k = 1638;
  faultline::RegionOptions o;
  o.name = "bench-dirty";
  o.policy = faultline::Policy::track_writes;
  o.backend = backend;
  o.write_tracking = mode;
  auto r = faultline::reserve_region(n * kPage, o);
  if (!r.ok()) {
    state.SkipWithError(r.error().message().c_str());
    return;
  }
  auto* p = static_cast<volatile char*>(r->data());
  for (std::size_t i = 0; i < n; ++i) p[i * kPage] = 0;
  (void)r->collect_dirty();
  std::vector<std::size_t> writes(k);
  std::mt19937_64 rng(3);
  for (auto& w : writes) w = rng() % n;
  for (auto _ : state) {
    for (std::size_t w : writes) p[w * kPage] = 1;
    auto d = r->collect_dirty();
    benchmark::DoNotOptimize(d);
  }
}

void BM_DirtyEpoch_Mprotect(benchmark::State& s) {
  dirty_epoch(s, faultline::Backend::signals, faultline::WriteTracking::async_wp);
}
void BM_DirtyEpoch_UffdSyncWp(benchmark::State& s) {
  dirty_epoch(s, faultline::Backend::userfaultfd, faultline::WriteTracking::sync_wp);
}
void BM_DirtyEpoch_UffdWpAsync(benchmark::State& s) {
  dirty_epoch(s, faultline::Backend::userfaultfd, faultline::WriteTracking::async_wp);
}

}  // namespace

BENCHMARK(BM_FirstTouch_Kernel)->Arg(0)->Arg(1)->UseManualTime()->Iterations(20);
BENCHMARK(BM_FirstTouch_Signals)->Arg(0)->Arg(1)->UseManualTime()->Iterations(20);
BENCHMARK(BM_FirstTouch_UffdSingle)->Arg(0)->Arg(1)->UseManualTime()->Iterations(20);
BENCHMARK(BM_FirstTouch_UffdReadahead)->Arg(0)->Arg(1)->UseManualTime()->Iterations(20);
BENCHMARK(BM_DirtyEpoch_Mprotect)->Unit(benchmark::kMillisecond)->Iterations(10);
BENCHMARK(BM_DirtyEpoch_UffdSyncWp)->Unit(benchmark::kMillisecond)->Iterations(10);
BENCHMARK(BM_DirtyEpoch_UffdWpAsync)->Unit(benchmark::kMillisecond)->Iterations(10);
