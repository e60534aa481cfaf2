// tests/trap/emulate_pages.hpp: what the emulation differential tests of every ISA share
// (emulate_diff_<isa>.hpp): a page pair the instruction accesses, its copy, the initial and the native
// contents, a page for the instruction, and a fault handler that emulates a fault on the page pair with
// the access redirected to the copy. An ISA's DiffRunner derives from it and adds the generator, the
// register state and the comparison.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <concepts>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "faultline/emulate.hpp"
#include "faultline/trap.hpp"

extern "C" {
void faultline_test_run_insn(void* state);
extern void* faultline_test_insn_ptr;
extern char faultline_test_insn_return[];
}

namespace faultline::test {

// Anything that yields random 64-bit numbers.
template <class F>
concept RandomFn = requires(F f) {
  { f() } -> std::convertible_to<std::uint64_t>;
};

// One generated case: the instruction's bytes, the register state it starts from, where its access
// lands in the page pair, and a description for failure messages.
template <class State>
struct EmulationCase {
  std::uint8_t code[32] = {};
  std::size_t len = 0;
  State init{};
  std::size_t offset = 0;
  std::string text;
};

// `State`: the ISA's register block for faultline_test_run_insn.
template <class State>
class EmulationPages {
 public:
  using Case = EmulationCase<State>;

  EmulationPages() {
    page_ = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    auto map = [&](std::size_t n, int prot) {
      return static_cast<std::uint8_t*>(mmap(nullptr, n, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    };
    area_ = map(2 * page_, PROT_READ | PROT_WRITE);
    copy_ = map(2 * page_, PROT_READ | PROT_WRITE);
    init_ = map(2 * page_, PROT_READ | PROT_WRITE);
    native_ = map(2 * page_, PROT_READ | PROT_WRITE);
    code_ = map(page_, PROT_READ | PROT_WRITE | PROT_EXEC);
    if (!install().ok()) std::abort();
    auto id = add_handler(&EmulationPages::on_fault, this, trap_segv);
    if (!id.ok()) std::abort();
    id_ = *id;
  }
  ~EmulationPages() {
    (void)remove_handler(id_);
    for (std::uint8_t* p : {area_, copy_, init_, native_}) munmap(p, 2 * page_);
    munmap(code_, page_);
  }
  EmulationPages(const EmulationPages&) = delete;
  EmulationPages& operator=(const EmulationPages&) = delete;

  std::size_t page() const { return page_; }

 protected:
  // Runs the instruction already in code_ twice through faultline_test_run_insn: natively on the
  // readable page pair (`native` is its state), then emulated on the protected pair (`emulated`), both
  // from random initial contents. "" when the emulated run faulted once and was emulated, else why not.
  template <RandomFn R>
  std::string run_both(R& rnd, State* native, State* emulated) {
    for (std::size_t i = 0; i < 2 * page_; i += 8) {
      const std::uint64_t v = rnd();
      std::memcpy(init_ + i, &v, 8);
    }
    faultline_test_insn_ptr = code_;
    std::memcpy(area_, init_, 2 * page_);
    faultline_test_run_insn(native);
    std::memcpy(native_, area_, 2 * page_);
    std::memcpy(area_, init_, 2 * page_);
    std::memcpy(copy_, init_, 2 * page_);
    mprotect(area_, 2 * page_, PROT_NONE);
    status_ = EmulateStatus::ok;
    faults_ = 0;
    faultline_test_run_insn(emulated);
    mprotect(area_, 2 * page_, PROT_READ | PROT_WRITE);
    if (faults_ != 1) return "expected one fault, saw " + std::to_string(faults_);
    if (status_ != EmulateStatus::ok) return std::string("emulate declined: ") + emulate_status_name(status_);
    return "";
  }
  // Whether the emulated run left the copy as the native run left the pages.
  bool memory_matches() const { return std::memcmp(native_, copy_, 2 * page_) == 0; }

  static std::string hex(std::uint64_t v) {
    char b[24];
    std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
    return b;
  }

  std::size_t page_;
  std::uint8_t *area_, *copy_, *init_, *native_, *code_;

 private:
  static bool rd(std::uintptr_t a, void* buf, std::size_t n, void* data) {
    auto* self = static_cast<EmulationPages*>(data);
    std::memcpy(buf, self->copy_ + (a - reinterpret_cast<std::uintptr_t>(self->area_)), n);
    return true;
  }
  static bool wr(std::uintptr_t a, const void* buf, std::size_t n, void* data) {
    auto* self = static_cast<EmulationPages*>(data);
    std::memcpy(self->copy_ + (a - reinterpret_cast<std::uintptr_t>(self->area_)), buf, n);
    return true;
  }
  static Disposition on_fault(FaultContext& ctx, void* data) {
    auto* self = static_cast<EmulationPages*>(data);
    const auto a = ctx.address(), base = reinterpret_cast<std::uintptr_t>(self->area_);
    if (a < base || a >= base + 2 * self->page_) return Disposition::declined;
    self->faults_++;
    self->status_ = emulate(ctx, MemoryAccessor{rd, wr, self});
    if (self->status_ != EmulateStatus::ok) mprotect(self->area_, 2 * self->page_, PROT_READ | PROT_WRITE);
    return Disposition::resolved;
  }

  HandlerId id_{};
  EmulateStatus status_ = EmulateStatus::ok;
  int faults_ = 0;
};

// Runs `attempts` random cases of `Runner` (its generate() and run()) from `seed`, printing each
// disagreement (at most 10) and the count compared on stderr. Returns the number of disagreements, or -1
// when fewer than `at_least` cases could be generated.
template <class Runner>
int differential(std::uint64_t seed, int attempts, int at_least) {
  Runner runner;
  std::uint64_t state = seed;
  auto rnd = [&] {  // splitmix64
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  };
  int ran = 0, failures = 0;
  for (int i = 0; i < attempts && failures < 10; ++i) {
    typename Runner::Case c;
    if (!runner.generate(rnd, &c)) continue;
    const std::string diff = runner.run(c, rnd);
    ++ran;
    if (!diff.empty()) {
      std::fprintf(stderr, "%s: %s\n", c.text.c_str(), diff.c_str());
      ++failures;
    }
  }
  std::fprintf(stderr, "%d instructions compared\n", ran);
  return ran < at_least ? -1 : failures;
}

}  // namespace faultline::test
