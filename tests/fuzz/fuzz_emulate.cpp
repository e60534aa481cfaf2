// tests/fuzz/fuzz_emulate.cpp: libFuzzer drives the emulation differential test
// (tests/trap/emulate_diff_<isa>.hpp): the fuzzer's bytes are the random numbers that choose the
// instruction, its operands, registers, flags and memory. A difference between the CPU and the emulator
// aborts. Built with clang (-fsanitize=fuzzer); `ctest -R fuzz` runs it for a bounded time, the target
// fuzz_emulate_10m for ten million executions.
//
// Built with FAULTLINE_FUZZ_REPLAY instead (every preset, aarch64 under qemu-user included), it has a
// main() that replays the files of the corpus given on its command line (tests/fuzz/corpus/emulate/, inputs
// libFuzzer kept for new coverage on x86-64): on another ISA the same bytes choose that ISA's
// instructions, so the replay is a fixed, reviewed set of differential cases there too.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__)
#include "trap/emulate_diff_x86_64.hpp"
#elif defined(__aarch64__)
#include "trap/emulate_diff_aarch64.hpp"
#endif

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

static int g_compared = 0;  // cases generated and compared (the replay reports it)

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static faultline::test::DiffRunner* runner = new faultline::test::DiffRunner();
  FuzzRandom rnd{data, size};
  faultline::test::DiffRunner::Case c;
  if (!runner->generate(rnd, &c)) return 0;
  const std::string diff = runner->run(c, rnd);
  ++g_compared;
  if (!diff.empty()) {
    std::fprintf(stderr, "emulation differs from the CPU: %s: %s\n", c.text.c_str(), diff.c_str());
    std::abort();
  }
  return 0;
}

#if defined(FAULTLINE_FUZZ_REPLAY)
#include <dirent.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

// Replays every file of the corpus folder argv[1]; fails on a difference (abort) or an empty corpus.
int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  DIR* d = opendir(argv[1]);
  if (d == nullptr) {
    std::perror(argv[1]);
    return 2;
  }
  int replayed = 0;
  while (const dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream f(std::string(argv[1]) + "/" + e->d_name, std::ios::binary);
    const std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    ++replayed;
  }
  closedir(d);
  std::printf("fuzz corpus: %d inputs replayed, %d instructions compared, no difference\n", replayed, g_compared);
  return replayed > 0 ? 0 : 1;
}
#endif
