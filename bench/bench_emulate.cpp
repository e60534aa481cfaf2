// bench/bench_emulate.cpp: Google Benchmark micro figures for decoding, emulation and healing.
//
// Fault/Skip: a load from a PROT_NONE page whose faultline handler resumes after the (known, 4-byte)
// instruction: the plain fault round trip. Fault/Emulate: the handler decodes the load and emulates it
// against another page. Fault/Heal: the handler rewrites the base register to the object's new copy
// and the load re-executes. Decode: decoding alone, outside any fault. Compare Emulate and Heal with
// Skip (same run) for the cost they add; `faultline bench --only emulation` prints that ratio.
#include <benchmark/benchmark.h>
#include <sys/mman.h>

#include <cstdlib>

#include "faultline/emulate.hpp"
#include "faultline/trap.hpp"

namespace {

enum class Mode { skip, emulate, heal };
Mode g_mode = Mode::skip;
std::uintptr_t g_old = 0, g_new = 0;

std::uintptr_t forward(std::uintptr_t a, void*) { return a >= g_old && a < g_old + 4096 ? g_new + (a - g_old) : 0; }

faultline::Disposition handler(faultline::FaultContext& ctx, void*) {
  if (ctx.address() < g_old || ctx.address() >= g_old + 4096) return faultline::Disposition::declined;
  bool ok = true;
  switch (g_mode) {
    case Mode::skip: ctx.set_pc(ctx.pc() + 4); break;
    case Mode::emulate: ok = faultline::emulate(ctx, g_new + (ctx.address() - g_old)) == faultline::EmulateStatus::ok; break;
    case Mode::heal: ok = faultline::heal(ctx, forward, nullptr) == faultline::EmulateStatus::ok; break;
  }
  return ok ? faultline::Disposition::resolved : faultline::Disposition::declined;
}

void setup() {
  static bool done = [] {
    g_old = reinterpret_cast<std::uintptr_t>(mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    g_new = reinterpret_cast<std::uintptr_t>(mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (!faultline::install().ok() || !faultline::add_handler(handler, nullptr).ok()) std::abort();
    return true;
  }();
  (void)done;
}

void run(benchmark::State& state, Mode mode) {
  setup();
  g_mode = mode;
  for (auto _ : state) {
    std::uintptr_t p = g_old;
    std::uint64_t v;
    asm volatile("movq 64(%1), %0" : "=a"(v), "+D"(p) : : "memory");
    benchmark::DoNotOptimize(v);
  }
}

void BM_Fault_Skip(benchmark::State& s) { run(s, Mode::skip); }
void BM_Fault_Emulate(benchmark::State& s) { run(s, Mode::emulate); }
void BM_Fault_Heal(benchmark::State& s) { run(s, Mode::heal); }

void BM_DecodeOnly(benchmark::State& state) {
  const std::uint8_t insn[] = {0x48, 0x8b, 0x44, 0x8b, 0x10};  // mov rax, [rbx+rcx*4+0x10]
  faultline::Instruction in;
  for (auto _ : state) {
    benchmark::DoNotOptimize(faultline::decode_bytes(insn, sizeof insn, &in));
  }
}

}  // namespace

BENCHMARK(BM_Fault_Skip)->MinTime(0.3);
BENCHMARK(BM_Fault_Emulate)->MinTime(0.3);
BENCHMARK(BM_Fault_Heal)->MinTime(0.3);
BENCHMARK(BM_DecodeOnly);
