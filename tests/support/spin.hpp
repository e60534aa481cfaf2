// tests/support/spin.hpp: a thread that spins with known values in every general register, the flags and
// every vector register (tests/thread/spin_x86_64.S), and the signal helpers the stop-the-world and
// injection tests share (exit_spin_handler runs in signal context; installing handlers is in signals.hpp).
#pragma once

#include <signal.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

#include "support/signals.hpp"

extern "C" {
void faultline_test_spin(const std::uint64_t* table);
extern char faultline_test_spin_loop[];
extern char faultline_test_spin_exit[];
}

namespace faultline::test {

// The register table faultline_test_spin loads (see tests/spin_x86_64.S).
constexpr int kGprs = 15;
constexpr std::uint64_t kFlags = 0x8D7;  // CF PF AF ZF SF OF and the reserved bit 1
inline constexpr int kGregOrder[kGprs] = {REG_RAX, REG_RBX, REG_RCX, REG_RDX, REG_RSI, REG_RDI, REG_RBP, REG_R8,
                                   REG_R9,  REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15};
struct SpinTable {
  std::uint64_t gpr[kGprs];
  std::uint64_t xmm[32];
  std::uint64_t flags;
};
static_assert(sizeof(SpinTable) == 384);

inline SpinTable make_table(std::uint64_t seed) {
  SpinTable t{};
  for (int i = 0; i < kGprs; ++i) t.gpr[i] = 0x5150'0000'0000'0000ull ^ (seed << 32) ^ (0x1111ull * (i + 1));
  for (int i = 0; i < 32; ++i) t.xmm[i] = 0x51D0'0000'0000'0000ull ^ (seed << 32) ^ (0x2222ull * (i + 1));
  t.flags = kFlags;
  return t;
}

// A signal handler that ends faultline_test_spin (moves the PC to its exit) once it spins.
inline std::atomic<int> g_exited{0};
inline void exit_spin_handler(int, siginfo_t*, void* ucv) {
  auto* uc = static_cast<ucontext_t*>(ucv);
  if (reinterpret_cast<char*>(uc->uc_mcontext.gregs[REG_RIP]) == faultline_test_spin_loop) {
    uc->uc_mcontext.gregs[REG_RIP] = reinterpret_cast<greg_t>(faultline_test_spin_exit);
    g_exited = 1;
  }
}

// Sends `sig` to `tid` until `done` (bounded: about 20 s).
template <class Pred>
inline bool signal_until(long tid, int sig, Pred done) {
  for (int i = 0; i < 20000 && !done(); ++i) {
    syscall(SYS_tgkill, getpid(), tid, sig);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return done();
}

inline long gettid_() { return syscall(SYS_gettid); }

}  // namespace faultline::test
