// tests/support/spin.hpp: a thread that spins with known values in every general register, the flags and
// every vector register (tests/thread/spin_<isa>.S), and the signal helpers the stop-the-world and
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

#include "faultline/context.hpp"
#include "faultline/regs.hpp"
#include "support/signals.hpp"

extern "C" {
void faultline_test_spin(const std::uint64_t* table);
extern char faultline_test_spin_loop[];
extern char faultline_test_spin_exit[];
}

namespace faultline::test {

// The register table faultline_test_spin loads (see tests/thread/spin_<isa>.S): gpr[i] goes to register
// kGprOrder[i], vec to the vector registers (two words each), flags to the flags register.
#if defined(__x86_64__)
constexpr int kGprs = 15;
constexpr std::uint64_t kFlags = 0x8D7;      // CF PF AF ZF SF OF and the reserved bit 1
constexpr std::uint64_t kFlagsMask = 0xCD5;  // what the loop keeps: the arithmetic flags and DF
inline constexpr Reg kGprOrder[kGprs] = {Reg::rax, Reg::rbx, Reg::rcx, Reg::rdx, Reg::rsi, Reg::rdi, Reg::rbp, Reg::r8,
                                         Reg::r9,  Reg::r10, Reg::r11, Reg::r12, Reg::r13, Reg::r14, Reg::r15};
#elif defined(__aarch64__)
constexpr int kGprs = 31;  // x0..x30, in order
constexpr std::uint64_t kFlags = 0xF0000000;  // N Z C V
constexpr std::uint64_t kFlagsMask = 0xF0000000;
inline constexpr Reg kGprOrder[kGprs] = {
    Reg::x0,  Reg::x1,  Reg::x2,  Reg::x3,  Reg::x4,  Reg::x5,  Reg::x6,  Reg::x7,  Reg::x8,  Reg::x9,  Reg::x10,
    Reg::x11, Reg::x12, Reg::x13, Reg::x14, Reg::x15, Reg::x16, Reg::x17, Reg::x18, Reg::x19, Reg::x20, Reg::x21,
    Reg::x22, Reg::x23, Reg::x24, Reg::x25, Reg::x26, Reg::x27, Reg::x28, Reg::x29, Reg::x30};
#endif
constexpr int kVecWords = 2 * static_cast<int>(kVectorRegCount);
struct SpinTable {
  std::uint64_t gpr[kGprs];
  std::uint64_t vec[kVecWords];
  std::uint64_t flags;
};
static_assert(sizeof(SpinTable) == 8 * (kGprs + kVecWords + 1));

inline SpinTable make_table(std::uint64_t seed) {
  SpinTable t{};
  for (int i = 0; i < kGprs; ++i) t.gpr[i] = 0x5150'0000'0000'0000ull ^ (seed << 32) ^ (0x1111ull * (i + 1));
  for (int i = 0; i < kVecWords; ++i) t.vec[i] = 0x51D0'0000'0000'0000ull ^ (seed << 32) ^ (0x2222ull * (i + 1));
  t.flags = kFlags;
  return t;
}

// A signal handler that ends faultline_test_spin (moves the PC to its exit) once it spins.
inline std::atomic<int> g_exited{0};
inline void exit_spin_handler(int, siginfo_t*, void* ucv) {
  FaultContext ctx(static_cast<ucontext_t*>(ucv));
  if (reinterpret_cast<char*>(ctx.pc()) == faultline_test_spin_loop) {
    ctx.set_pc(reinterpret_cast<std::uintptr_t>(faultline_test_spin_exit));
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
