// tools/faultline/commands.hpp: the subcommands of the `faultline` tool.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace faultline::cli {

struct InfoArgs {
  bool json = false;
  bool kernels = false;  // the facility table instead
  std::string as;        // a kernel mask to apply first ("" none)
};
int run_info(const InfoArgs& args);

// `faultline symbolize [FILE]`: the report in FILE (or standard input) with full names and file:line.
int run_symbolize(const std::string& file);
// The same on a report's text (used by `faultline catch` too).
std::string symbolize_report(const std::string& text);
// The machine's description (kernel, CPU, page size, userfaultfd features) as JSON.
std::string machine_json();

struct BenchArgs {
  bool quick = false;
  unsigned rounds = 0;  // 0: the default (9, or 3 with --quick)
  std::size_t pages = 4096;
  unsigned threads = 0;
  std::vector<std::string> only;
  std::string json_path, svg_path;
  std::string as;  // a kernel mask to apply first ("" none)
};
int run_bench(const BenchArgs& args);

struct CatchArgs {
  int fd = 2;
  bool no_color = false;
  bool stats = false;  // FAULTLINE_STATS=1 for the program: a summary of the counters at its exit
  std::vector<std::string> command;
};
int run_catch(const CatchArgs& args);

}  // namespace faultline::cli
