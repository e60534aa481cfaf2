// report/report_state.hpp: the report's configuration, shared by the signal-path writer and enable().
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

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

// A spare stack for the report (mapped once by enable(), with a guard page below; never unmapped): used
// when the handler runs on an alternate stack with less than os::kHandlerStackRoom bytes left (a thread
// that set a small one itself and never attached, like the threads of Rust's standard library). One
// report at a time uses it (`busy`); another finding it busy writes on its own stack.
struct SpareStack {
  std::atomic<std::uintptr_t> top{0};
  std::atomic<bool> busy{false};
};
extern SpareStack g_spare_stack;
inline constexpr std::size_t kSpareStackSize = std::size_t{128} << 10;

// The trap's fatal hook: writes the report with g_config. Signal path.
void fatal_hook(const FaultContext& ctx, const StackOverflow* overflow, const char* cause) noexcept;

// The full writer. Signal path.
void write_report(const FaultContext& ctx, int fd, bool color, bool backtrace, unsigned max_frames,
                  const char* reason, const StackOverflow* overflow, const char* cause) noexcept;

}  // namespace faultline::report
