// report/report.cpp: enabling and disabling the crash report. Not signal path.
#include <fcntl.h>
#include <unistd.h>


#include <cstdlib>
#include <cstring>
#include <string>

#include "core/guard.hpp"
#include "faultline/report.hpp"
#include "os/linux/sigstack.hpp"
#include "os/linux/syscall.hpp"
#include "report/report_state.hpp"
#include "trap/dispatcher.hpp"

namespace faultline::report {

Result<void> enable(const Options& opts) {
  return core::guarded([&]() -> Result<void> {
    if (opts.fd < 0 || fcntl(opts.fd, F_GETFD) == -1) {
      return Error(Errc::invalid_argument, "report::enable: fd " + std::to_string(opts.fd) + " is not open");
    }
    if (opts.max_frames == 0 || opts.max_frames > 256) {
      return Error(Errc::invalid_argument, "report::enable: max_frames must be 1..256");
    }
    bool color = false;
    switch (opts.color) {
      case Color::always: color = true; break;
      case Color::never: color = false; break;
      case Color::automatic: {
        const char* no_color = std::getenv("NO_COLOR");
        color = isatty(opts.fd) == 1 && (no_color == nullptr || *no_color == '\0');
        break;
      }
    }
    g_config.fd.store(opts.fd, std::memory_order_relaxed);
    g_config.color.store(color, std::memory_order_relaxed);
    g_config.backtrace.store(opts.backtrace, std::memory_order_relaxed);
    g_config.max_frames.store(opts.max_frames, std::memory_order_relaxed);
    if (g_spare_stack.top.load(std::memory_order_acquire) == 0) {
      // Mapped once, kept for the process's life (a report may be running on it when disable() returns).
      const std::size_t total = kSpareStackSize + static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
      const char* failed = "";
      const long m = os::map_guarded_stack(kSpareStackSize, &failed);
      if (os::is_err(m)) {
        return Error::from_errno((std::string("report::enable: ") + failed + " of the report's spare stack").c_str(),
                                 static_cast<int>(-m));
      }
      void* map = reinterpret_cast<void*>(m);
      std::uintptr_t expected = 0;
      const std::uintptr_t top = static_cast<std::uintptr_t>(m) + total;
      if (!g_spare_stack.top.compare_exchange_strong(expected, top, std::memory_order_acq_rel)) {
        os::raw_munmap(map, total);  // another thread's enable() mapped one first
      }
    }
    trap::g_state.log_fd.store(opts.fd, std::memory_order_relaxed);
    trap::g_state.fatal_hook.store(fatal_hook, std::memory_order_release);
    return {};
  });
}

Result<void> enable_from_env(const char* value) {
  return core::guarded([&]() -> Result<void> {
    if (value == nullptr) return Error(Errc::invalid_argument, "report::enable_from_env: null value");
    Options o;
    if (std::strcmp(value, "1") == 0 || std::strcmp(value, "stderr") == 0 || std::strcmp(value, "yes") == 0) {
      o.fd = 2;
    } else if (std::strcmp(value, "0") == 0 || std::strcmp(value, "no") == 0) {
      return {};
    } else {
      char* end = nullptr;
      long fd = std::strtol(value, &end, 10);
      if (end == value || *end != '\0' || fd < 0 || fd > 65535) {
        return Error(Errc::invalid_argument, std::string("FAULTLINE_REPORT: '") + value +
                                                 "' is neither 1/stderr/yes/0/no nor a file descriptor number");
      }
      o.fd = static_cast<int>(fd);
    }
    return enable(o);
  });
}

void disable() noexcept { trap::g_state.fatal_hook.store(nullptr, std::memory_order_release); }

bool enabled() noexcept { return trap::g_state.fatal_hook.load(std::memory_order_acquire) != nullptr; }

}  // namespace faultline::report
