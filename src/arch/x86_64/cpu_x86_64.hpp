// arch/x86_64/cpu_x86_64.hpp: the x86-64 architecture layer.
//
// Raw `syscall` instruction, register access over ucontext_t's gregs, and the access kind from the
// page-fault error code the kernel saves in gregs[REG_ERR] (Intel SDM vol. 3, 4.7):
//   bit 0 (P)    1 = the page was present and its protection forbade the access; 0 = not present.
//                PROT_NONE pages look "not present" to the hardware, so P is 0 for them whether or not
//                the page is populated; P is 1 for a write to a populated read-only page.
//   bit 1 (W/R)  1 = the access was a write.
//   bit 2 (U/S)  1 = user mode (always set for faults delivered as signals).
//   bit 4 (I/D)  1 = instruction fetch.
// Bits 1 and 4 are what faultline reports; bit 0 is shown in reports as "present"/"not present".
// Header-only, async-signal-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <signal.h>
#include <sys/ucontext.h>

#include "faultline/context.hpp"
#include "faultline/regs.hpp"

namespace faultline::arch {

struct X86_64 {
  static constexpr const char* kName = "x86_64";
  // The System V ABI lets a leaf function use 128 bytes below %rsp without moving it.
  static constexpr std::uintptr_t kRedZone = 128;
  // The signal frame keeps the FP/SIMD state outside the ucontext (fpregs): capture() copies it apart.
  static constexpr bool kSimdInContext = false;

  static long syscall6(long n, long a1, long a2, long a3, long a4, long a5, long a6) noexcept {
    long ret;
    register long r10 __asm__("r10") = a4;
    register long r8 __asm__("r8") = a5;
    register long r9 __asm__("r9") = a6;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
  }

  // faultline's register numbering (Reg) to the kernel's gregs index.
  static int greg_index(unsigned i) noexcept {
    static constexpr int kMap[] = {REG_RAX, REG_RBX, REG_RCX, REG_RDX, REG_RSI, REG_RDI, REG_RBP, REG_RSP,
                                   REG_R8,  REG_R9,  REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15,
                                   REG_RIP, REG_EFL};
    static_assert(sizeof(kMap) / sizeof(kMap[0]) == static_cast<unsigned>(Reg::count));
    return i < static_cast<unsigned>(Reg::count) ? kMap[i] : -1;
  }

  static std::uintptr_t pc(const ucontext_t& uc) noexcept {
    return static_cast<std::uintptr_t>(uc.uc_mcontext.gregs[REG_RIP]);
  }
  static std::uintptr_t sp(const ucontext_t& uc) noexcept {
    return static_cast<std::uintptr_t>(uc.uc_mcontext.gregs[REG_RSP]);
  }
  static std::uintptr_t fp(const ucontext_t& uc) noexcept {
    return static_cast<std::uintptr_t>(uc.uc_mcontext.gregs[REG_RBP]);
  }
  static void set_pc(ucontext_t& uc, std::uintptr_t v) noexcept {
    uc.uc_mcontext.gregs[REG_RIP] = static_cast<greg_t>(v);
  }
  static void set_sp(ucontext_t& uc, std::uintptr_t v) noexcept {
    uc.uc_mcontext.gregs[REG_RSP] = static_cast<greg_t>(v);
  }
  static std::uint64_t reg(const ucontext_t& uc, unsigned i) noexcept {
    int g = greg_index(i);
    return g < 0 ? 0 : static_cast<std::uint64_t>(uc.uc_mcontext.gregs[g]);
  }
  static bool set_reg(ucontext_t& uc, unsigned i, std::uintptr_t v) noexcept {
    int g = greg_index(i);
    if (g < 0) return false;
    uc.uc_mcontext.gregs[g] = static_cast<greg_t>(v);
    return true;
  }
  static const char* reg_name(unsigned i) noexcept { return faultline::reg_name(static_cast<Reg>(i)); }
  static std::uint64_t flags(const ucontext_t& uc) noexcept {
    return static_cast<std::uint64_t>(uc.uc_mcontext.gregs[REG_EFL]);
  }
  static std::uint64_t hw_error_code(const ucontext_t& uc) noexcept {
    return static_cast<std::uint64_t>(uc.uc_mcontext.gregs[REG_ERR]);
  }
  static Access access(const siginfo_t& si, const ucontext_t& uc) noexcept {
    // REG_ERR is the page-fault error code only for page faults (trap number 14).
    if (si.si_signo != SIGSEGV && si.si_signo != SIGBUS) return Access::unknown;
    if (uc.uc_mcontext.gregs[REG_TRAPNO] != 14) return Access::unknown;
    std::uint64_t err = hw_error_code(uc);
    if (err & 0x10) return Access::execute;
    if (err & 0x2) return Access::write;
    return Access::read;
  }
  static bool vector_reg(const ucontext_t& uc, unsigned i, std::uint8_t out[16]) noexcept {
    if (i >= kVectorRegCount || uc.uc_mcontext.fpregs == nullptr) return false;
    const auto* src = reinterpret_cast<const std::uint8_t*>(&uc.uc_mcontext.fpregs->_xmm[i]);
    for (int b = 0; b < 16; ++b) out[b] = src[b];
    return true;
  }
  static bool set_vector_reg(ucontext_t& uc, unsigned i, const std::uint8_t in[16]) noexcept {
    if (i >= kVectorRegCount || uc.uc_mcontext.fpregs == nullptr) return false;
    auto* dst = reinterpret_cast<std::uint8_t*>(&uc.uc_mcontext.fpregs->_xmm[i]);
    for (int b = 0; b < 16; ++b) dst[b] = in[b];
    return true;
  }
  static const void* simd_state(const ucontext_t& uc) noexcept { return uc.uc_mcontext.fpregs; }
  // Bytes of FP/SIMD state the signal frame holds at uc_mcontext.fpregs: the 512-byte FXSAVE image, or,
  // when the kernel marked it as XSAVE (FP_XSTATE_MAGIC1 in the software-reserved bytes), the whole
  // extended area (AVX upper halves, AVX-512, ...). 0 without FP state.
  static std::size_t simd_state_size(const ucontext_t& uc) noexcept {
    const auto* fp = reinterpret_cast<const std::uint8_t*>(uc.uc_mcontext.fpregs);
    if (fp == nullptr) return 0;
    std::uint32_t magic1, extended;
    __builtin_memcpy(&magic1, fp + 464, 4);  // struct _fpx_sw_bytes at offset 464 of the FXSAVE image
    __builtin_memcpy(&extended, fp + 468, 4);
    return magic1 == 0x46505853u && extended > 512 ? extended : 512;  // FP_XSTATE_MAGIC1
  }

  // Copies a signal frame's context into `dst` for later reading (stop-the-world): the FP/SIMD state,
  // which the frame keeps outside the ucontext, goes to `xstate` (at most `cap` bytes) and dst's fpregs
  // points there. Returns the bytes copied there (0: none, dst has no FP state).
  static std::size_t capture(ucontext_t& dst, const ucontext_t& src, void* xstate, std::size_t cap) noexcept {
    __builtin_memcpy(&dst, &src, sizeof(ucontext_t));
    std::size_t n = simd_state_size(src);
    if (n > cap) n = cap;
    if (n == 0 || xstate == nullptr) {
      dst.uc_mcontext.fpregs = nullptr;
      return 0;
    }
    __builtin_memcpy(xstate, src.uc_mcontext.fpregs, n);
    dst.uc_mcontext.fpregs = static_cast<fpregset_t>(xstate);
    return n;
  }
  // The general registers of a context as words (for conservative root scanning).
  static const std::uintptr_t* general_words(const ucontext_t& uc, std::size_t* n) noexcept {
    *n = NGREG;
    return reinterpret_cast<const std::uintptr_t*>(uc.uc_mcontext.gregs);
  }
  // The FP/SIMD state a ucontext object holds inside itself (one filled by getcontext, or copied whole):
  // glibc's __fpregs_mem, the 512-byte FXSAVE image.
  static const void* own_simd_state(const ucontext_t& uc, std::size_t* len) noexcept {
    *len = sizeof uc.__fpregs_mem;
    return &uc.__fpregs_mem;
  }

  // Call injection: rewrites `uc` so that, when the signal handler returns, the thread calls fn(arg) on
  // its own stack below the red zone, then restores every register of the original context (a copy of
  // the frame is kept on that stack) with rt_sigreturn and resumes at the interrupted PC. Returns 0, or
  // a negative reason: -1 no FP state in the frame, -2 the stack (lower bound `stack_lo`, 0 = unknown)
  // has no room, -3 the interrupted code ran on the alternate signal stack. Async-signal-safe. See thread/inject.cpp.
  static int inject_call(ucontext_t& uc, void (*fn)(void*), void* arg, std::uintptr_t stack_lo) noexcept;
  // Calls fn(arg) with the stack pointer at `top` (16-byte aligned down), then returns on the caller's
  // stack (stack_switch_x86_64_sig.cpp). Signal path.
  static void call_on_stack(void (*fn)(void*), void* arg, void* top) noexcept;

  // True when the hardware said the page was present (protection violation, not a missing page).
  static bool hw_present(const ucontext_t& uc) noexcept { return (hw_error_code(uc) & 0x1) != 0; }
};

using Current = X86_64;

}  // namespace faultline::arch
