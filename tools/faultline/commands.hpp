// tools/faultline/commands.hpp: the subcommands of the `faultline` tool.
#pragma once

namespace faultline::cli {

int run_info(bool json);

}  // namespace faultline::cli
