// tools/faultline/bench/bench.cpp: `faultline bench`: runs the sections and writes the outputs.
#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "bench/sections.hpp"
#include "commands.hpp"
#include "faultline/kernel.hpp"
#include "faultline/kernel_mask.hpp"
#include "faultline/trap.hpp"

namespace faultline::bench {

Mapping::Mapping(std::size_t bytes, int prot) : n_(bytes) {
  void* p = mmap(nullptr, bytes, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) die("mmap of " + std::to_string(bytes) + " bytes failed");
  p_ = static_cast<char*>(p);
}
Mapping::~Mapping() { munmap(p_, n_); }

FillStatus fill_pattern(const FillRequest& req, void*) {
  auto* w = reinterpret_cast<std::uint64_t*>(req.dest);
  for (std::size_t i = 0; i < req.length / 8; ++i) w[i] = (req.offset / 8 + i) * 0x9e3779b97f4a7c15ull;
  return {};
}

void die(const std::string& what) {
  std::fprintf(stderr, "\nfaultline bench: %s\n", what.c_str());
  std::exit(1);
}

}  // namespace faultline::bench

namespace faultline::cli {

int run_bench(const BenchArgs& args) {
  bench::Options o;
  o.quick = args.quick;
  o.rounds = args.rounds != 0 ? args.rounds : (args.quick ? 3 : 9);
  o.pages = args.pages;
  o.threads = args.threads;
  o.only = args.only;
  if (!args.as.empty()) {
    if (auto m = kernel_mask::set(args.as); !m) {
      std::fprintf(stderr, "faultline bench --as: %s\n", m.error().message().c_str());
      return 2;
    }
  }
  if (auto r = install(); !r) {
    std::fprintf(stderr, "faultline bench: install: %s\n", r.error().message().c_str());
    return 1;
  }
  o.emulator = probe_kernel().emulator;
  if (!o.emulator.empty()) {
    std::fprintf(stderr, "faultline bench: emulated (%s): the figures will measure the emulator, not this machine\n",
                 o.emulator.c_str());
  }
  bench::Bench b(o);
  bench::section_trap(b);
  bench::section_floor(b);
  bench::section_regions(b);
  bench::section_uffd(b);
  bench::section_cluster(b);
  bench::section_threads(b);
  bench::section_emulation(b);
  b.print_table(stdout);
  if (!args.json_path.empty()) {
    std::ofstream f(args.json_path);
    f << b.json(machine_json()) << '\n';
    if (!f) {
      std::fprintf(stderr, "faultline bench: cannot write %s\n", args.json_path.c_str());
      return 1;
    }
  }
  if (!args.svg_path.empty()) {
    std::ofstream f(args.svg_path);
    f << b.svg();
    if (!f) {
      std::fprintf(stderr, "faultline bench: cannot write %s\n", args.svg_path.c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace faultline::cli
