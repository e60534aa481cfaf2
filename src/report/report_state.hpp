// report/report_state.hpp: the report's configuration, shared by the signal-path writer and enable().
#pragma once

#include <atomic>

#include "faultline/context.hpp"
#include "faultline/trap.hpp"

namespace faultline::report {

struct ReportConfig {
  std::atomic<int> fd{2};
  std::atomic<bool> color{false};
  std::atomic<bool> backtrace{true};
  std::atomic<unsigned> max_frames{64};
};
extern ReportConfig g_config;

// The trap's fatal hook: writes the report with g_config. Signal path.
void fatal_hook(const FaultContext& ctx, const StackOverflow* overflow, const char* cause) noexcept;

// The full writer. Signal path.
void write_report(const FaultContext& ctx, int fd, bool color, bool backtrace, unsigned max_frames,
                  const char* reason, const StackOverflow* overflow, const char* cause) noexcept;

}  // namespace faultline::report
