// tools/faultline/main.cpp: the `faultline` command line (info, bench, catch).
#include <CLI/CLI.hpp>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "commands.hpp"

namespace {

constexpr const char* kCatchUsage =
    "Usage: faultline catch [--fd N] [--no-color] [--stats] [--] PROGRAM ARGS...\n"
    "Run a program with the crash report preloaded (like the old catchsegv).\n"
    "  --fd N       the file descriptor the report goes to (default 2, standard error)\n"
    "  --no-color   no colour in the report\n"
    "  --stats      at exit, faultline's counters on standard error: faults by signal, regions, handler\n"
    "               threads (sets FAULTLINE_STATS for the program)\n"
    "PROGRAM gets exactly its arguments: everything after `--`, or, without `--`, everything from the\n"
    "first word that is not one of catch's own options.\n";

// `faultline catch` parses its own few options and hands the program its arguments untouched (a
// general-purpose parser would reorder them or take the program's --help).
int catch_main(int argc, char** argv) {
  faultline::cli::CatchArgs a;
  int i = 2;
  for (; i < argc; ++i) {
    const std::string w = argv[i];
    if (w == "--") {
      ++i;
      break;
    }
    if (w == "--no-color") {
      a.no_color = true;
    } else if (w == "--stats") {
      a.stats = true;
    } else if (w == "--fd" || w.rfind("--fd=", 0) == 0) {
      std::string v = w == "--fd" ? (i + 1 < argc ? argv[++i] : "") : w.substr(5);
      char* end = nullptr;
      const long fd = std::strtol(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || fd < 0 || fd > INT_MAX) {
        std::fprintf(stderr, "faultline catch: --fd needs a file descriptor number\n%s", kCatchUsage);
        return 2;
      }
      a.fd = static_cast<int>(fd);
    } else if (w == "-h" || w == "--help") {
      std::fputs(kCatchUsage, stdout);
      return 0;
    } else if (w.size() > 1 && w[0] == '-') {
      std::fprintf(stderr, "faultline catch: unknown option %s (put -- before the program)\n%s", w.c_str(), kCatchUsage);
      return 2;
    } else {
      break;  // the program
    }
  }
  for (; i < argc; ++i) a.command.emplace_back(argv[i]);
  return faultline::cli::run_catch(a);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "catch") return catch_main(argc, argv);
  CLI::App app{"faultline: take charge of memory faults and traps on Linux"};
  app.set_version_flag("--version", std::string("faultline ") + FAULTLINE_VERSION);
  app.require_subcommand(1);

  bool json = false;
  auto* info = app.add_subcommand("info", "What this kernel offers faultline (userfaultfd, PAGEMAP_SCAN, ...)");
  info->add_flag("--json", json, "Print JSON instead of text");
  faultline::cli::InfoArgs info_args;
  info->add_option("--as", info_args.as, "Behave as on another kernel: 5.15, 6.1, none, unprivileged, or facility "
                                         "names (see --kernels); the same as FAULTLINE_KERNEL");
  info->add_flag("--kernels", info_args.kernels, "List every kernel facility faultline can use and its first release");

  faultline::cli::BenchArgs bench_args;
  auto* bench = app.add_subcommand("bench", "Measure every mechanism against the baseline users would pick instead");
  bench->add_flag("--quick", bench_args.quick, "Fewer rounds and smaller samples (for CI)");
  bench->add_option("--rounds", bench_args.rounds, "Interleaved rounds per row (default 9; 3 with --quick)")
      ->check(CLI::Range(1u, 1000u));
  bench->add_option("--only", bench_args.only, "Run only these sections (trap, regions, userfaultfd, file, dirty, "
                                               "threads, emulation, cluster, floor)")
      ->check(CLI::IsMember({"trap", "regions", "userfaultfd", "file", "dirty", "threads", "emulation", "cluster", "floor"}));
  bench->add_option("--pages", bench_args.pages, "Pages per first-touch sample (default 4096)")
      ->check(CLI::Range(std::size_t{64}, std::size_t{1} << 20));
  bench->add_option("--threads", bench_args.threads, "Threads for the multi-threaded rows")
      ->check(CLI::Range(1u, 1024u));
  bench->add_option("--json", bench_args.json_path, "Write every sample and the machine's description to FILE");
  bench->add_option("--svg", bench_args.svg_path, "Draw the ratios as a bar chart in FILE");
  bench->add_option("--as", bench_args.as, "Measure as on another kernel (see `faultline info --as`)");

  std::string symbolize_file;
  auto* symbolize = app.add_subcommand("symbolize", "Turn a saved crash report's frames (module+offset) into full "
                                                    "C++ names with file:line, from the modules' debug information");
  symbolize->add_option("file", symbolize_file, "The report (default: standard input)");

  // Listed for the help; parsed by catch_main.
  app.add_subcommand("catch", "Run a program with the crash report preloaded (like the old catchsegv); "
                              "faultline catch --help");

  CLI11_PARSE(app, argc, argv);
  if (info->parsed()) {
    info_args.json = json;
    return faultline::cli::run_info(info_args);
  }
  if (bench->parsed()) return faultline::cli::run_bench(bench_args);
  if (symbolize->parsed()) return faultline::cli::run_symbolize(symbolize_file);
  return 2;
}
