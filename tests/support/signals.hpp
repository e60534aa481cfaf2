// tests/support/signals.hpp: installing a test's own signal handlers (a program's handler installed
// before or after faultline, a handler that ends a spinning thread), and knowing when the sanitizer in
// use cannot run a test. These functions run in a test's body, never in signal context; the handlers
// they install do, and must stay async-signal-safe.
#pragma once

#include <cstdlib>

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

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

// Whether the tests run under qemu-user (the aarch64 workflow: cmake/aarch64-linux-gnu.cmake sets
// FAULTLINE_EMULATOR). What qemu-user does not do as a kernel would is skipped there, with the reason.
inline bool under_emulator() { return std::getenv("FAULTLINE_EMULATOR") != nullptr; }

// What qemu-user (7.2) does not do as Linux does, as the skips say it.
inline constexpr const char* kQemuSigbusToSelf =
    "qemu-user aborts when a program sends itself SIGBUS, which is how the signal backend ends an access "
    "whose fill failed";
inline constexpr const char* kQemuNestedFault =
    "qemu-user kills the program on a fault inside the handler of that same signal instead of delivering it";
inline constexpr const char* kQemuResidency =
    "qemu-user ignores madvise (MADV_POPULATE_WRITE), so mincore does not see the pages faultline filled";
inline constexpr const char* kQemuNoExec =
    "a child process running another aarch64 program needs binfmt_misc, which this machine does not have";

// Gives the calling thread an alternate signal stack of `size` bytes over a guard page, as Rust's std
// maps one (running off it faults; it corrupts nothing); _exit(91) if the kernel refuses. For children.
inline void set_guarded_altstack(std::size_t size) {
  const std::size_t guard = 4096;
  void* m = mmap(nullptr, guard + size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  stack_t ss{};
  ss.ss_sp = static_cast<char*>(m) + guard;
  ss.ss_size = size;
  if (m == MAP_FAILED || mprotect(m, guard, PROT_NONE) != 0 || sigaltstack(&ss, nullptr) != 0) _exit(91);
}

}  // namespace faultline::test

// In a gtest body: skips the test under qemu-user, saying what qemu does not do.
#define FAULTLINE_SKIP_UNDER_EMULATOR(why)                                        \
  do {                                                                            \
    if (::faultline::test::under_emulator()) GTEST_SKIP() << "under qemu-user: " << (why); \
  } while (0)
