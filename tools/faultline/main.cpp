// tools/faultline/main.cpp: the `faultline` command line (info, bench, catch).
#include <CLI/CLI.hpp>

#include "commands.hpp"

int main(int argc, char** argv) {
  CLI::App app{"faultline: take charge of memory faults and traps on Linux"};
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
                                               "threads, emulation)")
      ->check(CLI::IsMember({"trap", "regions", "userfaultfd", "file", "dirty", "threads", "emulation"}));
  bench->add_option("--pages", bench_args.pages, "Pages per first-touch sample (default 4096)")
      ->check(CLI::Range(std::size_t{64}, std::size_t{1} << 20));
  bench->add_option("--threads", bench_args.threads, "Threads for the multi-threaded rows")
      ->check(CLI::Range(1u, 1024u));
  bench->add_option("--json", bench_args.json_path, "Write every sample and the machine's description to FILE");
  bench->add_option("--svg", bench_args.svg_path, "Draw the ratios as a bar chart in FILE");
  bench->add_option("--as", bench_args.as, "Measure as on another kernel (see `faultline info --as`)");

  faultline::cli::CatchArgs catch_args;
  auto* catch_cmd = app.add_subcommand("catch", "Run a program with the crash report preloaded (like the old catchsegv)");
  catch_cmd->add_option("--fd", catch_args.fd, "The program's file descriptor the report goes to (default 2)");
  catch_cmd->add_flag("--no-color", catch_args.no_color, "No colour in the report");
  catch_cmd->add_option("command", catch_args.command, "PROGRAM ARGS... (after --)")->required();
  catch_cmd->prefix_command();

  CLI11_PARSE(app, argc, argv);
  if (info->parsed()) {
    info_args.json = json;
    return faultline::cli::run_info(info_args);
  }
  if (bench->parsed()) return faultline::cli::run_bench(bench_args);
  if (catch_cmd->parsed()) {
    for (const std::string& extra : catch_cmd->remaining()) catch_args.command.push_back(extra);
    return faultline::cli::run_catch(catch_args);
  }
  return 2;
}
