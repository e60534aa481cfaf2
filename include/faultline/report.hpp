// faultline/report.hpp: the crash report.
//
// When enabled, a fault that is about to end the process (nobody resolved it and the previous action is
// the default one) first writes a report: the signal and its code by name, the fault address and the
// access kind, the /proc/self/maps line that holds the address, what each registered handler knows of
// the address (the region it falls in), every register, and a backtrace from the signal frame
// (libunwind; frame-pointer walking as a fallback). Then the fault goes on to the previous action, so the
// process still dies by the same signal, with the same wait status and core dump.
//
// The report is written in signal context with no allocation: it is async-signal-safe, except that
// libunwind's lookups of unwind tables may take the dynamic loader's lock (a crash inside dlopen could
// then hang the report; the process is dying either way, and the frame-pointer fallback does not).
//
// Enabling: report::enable(), or the environment variable FAULTLINE_REPORT when install() runs:
// FAULTLINE_REPORT=1 (or "stderr") writes to fd 2, FAULTLINE_REPORT=<n> to fd n. Colour is used on a
// terminal unless NO_COLOR is set (https://no-color.org).
#pragma once

#include "faultline/context.hpp"
#include "faultline/result.hpp"

namespace faultline::report {

enum class Color { automatic, always, never };

struct Options {
  int fd = 2;                        // where the report goes
  Color color = Color::automatic;    // automatic: on a terminal, unless NO_COLOR is set
  bool backtrace = true;
  unsigned max_frames = 64;          // 1..256
};

// Enables the report for fatal faults. Thread-safe; not async-signal-safe. Errc::invalid_argument for a
// negative or closed fd, or max_frames out of range; Errc::system_error (nothing changed) when the
// report's spare stack cannot be mapped. The spare stack (128 KiB and a guard page, mapped by the first
// enable() and kept for the process's life) is where the report runs when the faulting thread's
// handler runs on an alternate stack with less than 32 KiB left: a thread that never attached and set
// a small one itself (every thread Rust's standard library starts has 8 KiB) still gets the whole
// report. One report uses it at a time; another, meanwhile, writes on its own stack.
Result<void> enable(const Options& opts = {});
// Parses a FAULTLINE_REPORT value ("1", "stderr", "yes", or a file descriptor number) and enables.
Result<void> enable_from_env(const char* value);
// Disables the report. Thread-safe.
void disable() noexcept;
bool enabled() noexcept;

// Writes a report for `ctx` to `fd` now. `reason` (may be null) is printed in the headline.
// Async-signal-safe (see above for libunwind). Use it from your own handler to report a fault you are
// about to handle in some other way.
void write(const FaultContext& ctx, int fd, const char* reason = nullptr) noexcept;

}  // namespace faultline::report
