// faultline/regs.hpp: register names of the architecture faultline was built for.
//
// `Reg` numbers the general registers a FaultContext can read and write. x86-64 is supported; the
// aarch64 set will stand beside it under the same name. Async-signal-safe; thread-safe.
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
#else
#error "faultline: unsupported architecture"
#endif

// "rax", "r12", ... ; "?" for an out-of-range value.
inline const char* reg_name(Reg r) noexcept {
#if defined(__x86_64__)
  static constexpr const char* kNames[] = {"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8",
                                           "r9",  "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags"};
#endif
  unsigned i = static_cast<unsigned>(r);
  return i < static_cast<unsigned>(Reg::count) ? kNames[i] : "?";
}

}  // namespace faultline
