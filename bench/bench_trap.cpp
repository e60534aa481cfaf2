// bench/bench_trap.cpp: Google Benchmark micro figures for the trap dispatcher.
//
// FaultRoundTrip/bare: a hand-written SA_SIGINFO handler that mprotects the faulting page read-write.
// FaultRoundTrip/faultline: the same mprotect in a handler registered with faultline's dispatcher.
// Each iteration re-protects the page (PROT_NONE) and touches it once, so both measure
// mprotect + fault + handler + mprotect + sigreturn; the ratio faultline/bare is the dispatcher's cost.
// Target (issue "core"): faultline within 1.05x of bare.
#include <benchmark/benchmark.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>

#include "faultline/trap.hpp"

namespace {

char* g_page = nullptr;
const std::size_t kPage = 4096;

void bare_handler(int, siginfo_t* si, void*) {
  char* a = static_cast<char*>(si->si_addr);
  if (a >= g_page && a < g_page + kPage) {
    mprotect(g_page, kPage, PROT_READ | PROT_WRITE);
    return;
  }
  signal(SIGSEGV, SIG_DFL);
}

faultline::Disposition fl_handler(faultline::FaultContext& ctx, void*) {
  auto a = ctx.address();
  auto base = reinterpret_cast<std::uintptr_t>(g_page);
  if (a < base || a >= base + kPage) return faultline::Disposition::declined;
  mprotect(g_page, kPage, PROT_READ | PROT_WRITE);
  return faultline::Disposition::resolved;
}

void touch_loop(benchmark::State& state) {
  for (auto _ : state) {
    mprotect(g_page, kPage, PROT_NONE);
    *reinterpret_cast<volatile char*>(g_page) = 1;
  }
}

void BM_FaultRoundTrip_Bare(benchmark::State& state) {
  g_page = static_cast<char*>(mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  g_page[0] = 1;
  struct sigaction sa {}, old{};
  sa.sa_sigaction = bare_handler;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGSEGV, &sa, &old);
  touch_loop(state);
  sigaction(SIGSEGV, &old, nullptr);
  munmap(g_page, kPage);
}

void BM_FaultRoundTrip_Faultline(benchmark::State& state) {
  g_page = static_cast<char*>(mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  g_page[0] = 1;
  if (!faultline::install().ok()) std::abort();
  auto id = faultline::add_handler(fl_handler, nullptr);
  if (!id.ok()) std::abort();
  touch_loop(state);
  (void)faultline::remove_handler(*id);
  (void)faultline::uninstall();
  munmap(g_page, kPage);
}

// The mprotect pair alone, without a fault: what both variants share.
void BM_MprotectPairOnly(benchmark::State& state) {
  g_page = static_cast<char*>(mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  g_page[0] = 1;
  for (auto _ : state) {
    mprotect(g_page, kPage, PROT_NONE);
    mprotect(g_page, kPage, PROT_READ | PROT_WRITE);
  }
  munmap(g_page, kPage);
}

BENCHMARK(BM_FaultRoundTrip_Bare)->MinTime(0.5);
BENCHMARK(BM_FaultRoundTrip_Faultline)->MinTime(0.5);
BENCHMARK(BM_MprotectPairOnly)->MinTime(0.5);

}  // namespace

BENCHMARK_MAIN();
