// faultline/regs.hpp: register names of the architecture faultline was built for.
//
// `Reg` numbers the general registers a FaultContext can read and write, for x86-64 and for aarch64
// (x0-x30, sp, pc, pstate), under the same name. Async-signal-safe; thread-safe.
#pragma once

namespace faultline {

#if defined(__x86_64__)
enum class Reg : unsigned {
  rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp,
  r8, r9, r10, r11, r12, r13, r14, r15,
  rip, rflags,
  count
};
// Number of 128-bit vector registers a FaultContext exposes (xmm0-xmm15).
inline constexpr unsigned kVectorRegCount = 16;
#elif defined(__aarch64__)
enum class Reg : unsigned {
  x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15,
  x16, x17, x18, x19, x20, x21, x22, x23, x24, x25, x26, x27, x28, x29, x30,
  sp, pc, pstate,
  count
};
// Number of 128-bit vector registers a FaultContext exposes (v0-v31, from the frame's fpsimd record).
inline constexpr unsigned kVectorRegCount = 32;
#else
#error "faultline: unsupported architecture"
#endif

// "rax", "r12", ... ; "?" for an out-of-range value.
inline const char* reg_name(Reg r) noexcept {
#if defined(__x86_64__)
  static constexpr const char* kNames[] = {"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8",
                                           "r9",  "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags"};
#elif defined(__aarch64__)
  static constexpr const char* kNames[] = {"x0",  "x1",  "x2",  "x3",  "x4",  "x5",  "x6",  "x7",  "x8",
                                           "x9",  "x10", "x11", "x12", "x13", "x14", "x15", "x16", "x17",
                                           "x18", "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26",
                                           "x27", "x28", "x29", "x30", "sp",  "pc",  "pstate"};
#endif
  unsigned i = static_cast<unsigned>(r);
  return i < static_cast<unsigned>(Reg::count) ? kNames[i] : "?";
}

}  // namespace faultline
