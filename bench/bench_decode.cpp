// bench/bench_decode.cpp: Google Benchmark figures for what `faultline bench` does not measure as a row
// of its own: decoding an instruction alone, outside any fault (the fault-path rows, with emulation and
// healing, are `faultline bench --only emulation`). One benchmark per row: nothing here repeats a row of
// the command.
#include <benchmark/benchmark.h>

#include <cstdint>

#include "faultline/emulate.hpp"

namespace {

void BM_DecodeOnly(benchmark::State& state) {
#if defined(__x86_64__)
  const std::uint8_t insn[] = {0x48, 0x8b, 0x44, 0x8b, 0x10};  // mov rax, [rbx+rcx*4+0x10]
#else
  const std::uint8_t insn[] = {0x20, 0x08, 0x40, 0xf9};  // ldr x0, [x1, #16]
#endif
  faultline::Instruction in;
  for (auto _ : state) {
    benchmark::DoNotOptimize(faultline::decode_bytes(insn, sizeof insn, &in));
  }
}

}  // namespace

BENCHMARK(BM_DecodeOnly);
BENCHMARK_MAIN();
