// tests/support/signals.hpp: installing a test's own signal handlers (a program's handler installed
// before or after faultline, a handler that ends a spinning thread), and knowing when the sanitizer in
// use cannot run a test. These functions run in a test's body, never in signal context; the handlers
// they install do, and must stay async-signal-safe.
#pragma once

#include <signal.h>

#include <initializer_list>

namespace faultline::test {

// Installs `sa` as the action of `sig`, with the further `flags` (SA_NODEFER, SA_RESETHAND, ...) and
// the signals `blocked` added to its mask while it runs.
inline void install_action(int sig, struct sigaction sa, int flags, std::initializer_list<int> blocked) {
  sa.sa_flags |= flags;
  sigemptyset(&sa.sa_mask);
  for (int b : blocked) sigaddset(&sa.sa_mask, b);
  sigaction(sig, &sa, nullptr);
}
// The same for an SA_SIGINFO handler ...
inline void install_handler(int sig, void (*fn)(int, siginfo_t*, void*), int flags = 0,
                            std::initializer_list<int> blocked = {}) {
  struct sigaction sa {};
  sa.sa_sigaction = fn;
  sa.sa_flags = SA_SIGINFO;
  install_action(sig, sa, flags, blocked);
}
// ... and for a plain one (or SIG_DFL, SIG_IGN).
inline void install_plain_handler(int sig, void (*fn)(int), int flags = 0, std::initializer_list<int> blocked = {}) {
  struct sigaction sa {};
  sa.sa_handler = fn;
  install_action(sig, sa, flags, blocked);
}

#if defined(__SANITIZE_THREAD__)
constexpr bool kTsan = true;
#else
constexpr bool kTsan = false;
#endif

// Why a test whose thread must be interrupted by a signal is skipped under TSan: TSan defers
// asynchronous signals to its own safe points and runs the handler on a copy of the context, so a loop
// of plain instructions never stops, and changes to the context are lost.
inline constexpr const char* kTsanDefersAsyncSignals =
    "TSan defers asynchronous signals and discards changes to their context";

}  // namespace faultline::test
