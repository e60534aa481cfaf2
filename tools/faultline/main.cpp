// tools/faultline/main.cpp: the `faultline` command line (info; bench and catch come with their issues).
#include <CLI/CLI.hpp>

#include "commands.hpp"

int main(int argc, char** argv) {
  CLI::App app{"faultline: take charge of memory faults and traps on Linux"};
  app.require_subcommand(1);

  bool json = false;
  auto* info = app.add_subcommand("info", "What this kernel offers faultline (userfaultfd, PAGEMAP_SCAN, ...)");
  info->add_flag("--json", json, "Print JSON instead of text");

  CLI11_PARSE(app, argc, argv);
  if (info->parsed()) return faultline::cli::run_info(json);
  return 2;
}
