// tests/fuzz/fuzz_emulate.cpp: libFuzzer drives the emulation differential test (tests/trap/emulate_diff_x86_64.hpp):
// the fuzzer's bytes are the random numbers that choose the instruction, its operands, registers, flags
// and memory. A difference between the CPU and the emulator aborts. Built with clang
// (-fsanitize=fuzzer); `ctest -R fuzz` runs it for a bounded time, the target fuzz_emulate_10m for ten
// million executions.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "trap/emulate_diff_x86_64.hpp"

namespace {

// The fuzzer's input as a stream of 64-bit numbers (zeros once it runs out).
struct FuzzRandom {
  const std::uint8_t* data;
  std::size_t size, pos = 0;
  std::uint64_t counter = 0;
  std::uint64_t operator()() {
    std::uint64_t v = 0;
    const std::size_t n = size - pos < 8 ? size - pos : 8;
    std::memcpy(&v, data + pos, n);
    pos += n;
    // Past the input, a fixed sequence keeps memory contents varied but deterministic.
    if (n < 8) v ^= (++counter) * 0x9e3779b97f4a7c15ull;
    return v;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static faultline::test::DiffRunner* runner = new faultline::test::DiffRunner();
  FuzzRandom rnd{data, size};
  faultline::test::DiffRunner::Case c;
  if (!runner->generate(rnd, &c)) return 0;
  const std::string diff = runner->run(c, rnd);
  if (!diff.empty()) {
    std::fprintf(stderr, "emulation differs from the CPU: %s: %s\n", c.text.c_str(), diff.c_str());
    std::abort();
  }
  return 0;
}
