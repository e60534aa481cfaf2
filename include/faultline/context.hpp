// faultline/context.hpp: a view of a faulting (or suspended) thread's context.
//
// A FaultContext wraps the siginfo_t and ucontext_t the kernel hands a signal handler, or a ucontext_t
// captured from a suspended thread (then there is no siginfo: signal() is 0, address() is 0). It decodes
// what a fault handler needs: the fault address, the access kind as the hardware reported it, the
// program counter, stack and frame pointers, every general register, the flags and the SIMD state; and
// it changes the context: set registers, move the PC, so that the thread resumes elsewhere when the
// handler returns.
//
// Async-signal-safety: every member is async-signal-safe (no allocation, no locks, no errno).
// Thread-safety: a FaultContext belongs to the thread handling the fault; do not share it.
#pragma once

#include <cstdint>
#include <signal.h>
#include <ucontext.h>

#include "faultline/regs.hpp"

namespace faultline {

// What the faulting instruction tried to do, as the hardware reported it. `unknown` when the signal
// carries no such information (SIGILL, SIGFPE, a signal sent by kill, a captured context).
enum class Access : std::uint8_t { unknown, read, write, execute };

// "read", "write", "execute", "unknown".
const char* access_name(Access a) noexcept;

class FaultContext {
 public:
  FaultContext(int sig, siginfo_t* info, ucontext_t* uc) noexcept : sig_(sig), info_(info), uc_(uc) {}
  // A suspended thread's captured context (no siginfo).
  explicit FaultContext(ucontext_t* uc) noexcept : sig_(0), info_(nullptr), uc_(uc) {}

  int signal() const noexcept { return sig_; }
  // si_code, or 0 without siginfo.
  int code() const noexcept { return info_ != nullptr ? info_->si_code : 0; }
  // "SEGV_ACCERR", "BUS_ADRERR", "SI_TKILL", ...
  const char* code_name() const noexcept;
  // "SIGSEGV", ...
  const char* signal_name() const noexcept;
  // True for a fault the kernel raised for an instruction (si_code > 0); false for a signal sent by
  // kill, tgkill or sigqueue (si_code <= 0), which faultline never treats as a fault in its regions.
  bool is_kernel_fault() const noexcept { return info_ != nullptr && info_->si_code > 0; }

  // si_addr: the faulting data address (for an instruction fetch, the target), or 0.
  std::uintptr_t address() const noexcept {
    return info_ != nullptr ? reinterpret_cast<std::uintptr_t>(info_->si_addr) : 0;
  }
  Access access() const noexcept;
  // x86-64: the page-fault error code (gregs[REG_ERR]); see arch/x86_64/cpu_x86_64.hpp for its bits.
  // aarch64: the ESR_EL1 value of the frame's esr_context record, 0 when the kernel (or qemu-user, which
  // never provides one) gave none; see arch/aarch64/cpu_aarch64.hpp.
  std::uint64_t hw_error_code() const noexcept;
  // True when the hardware reported the page present (a protection violation rather than a missing
  // page). PROT_NONE pages always read as not present.
  bool hw_present() const noexcept;

  std::uintptr_t pc() const noexcept;
  std::uintptr_t sp() const noexcept;
  std::uintptr_t fp() const noexcept;
  std::uint64_t flags() const noexcept;
  std::uint64_t reg(Reg r) const noexcept;

  // Resume at `pc` when the handler returns.
  void set_pc(std::uintptr_t pc) noexcept;
  void set_sp(std::uintptr_t sp) noexcept;
  // Returns false for an out-of-range register.
  bool set_reg(Reg r, std::uint64_t value) noexcept;

  // 128-bit vector register i (x86-64: xmm0..xmm15; aarch64: v0..v31) as 16 bytes, little-endian. Returns false when i is
  // out of range or the context carries no SIMD state.
  bool vector_reg(unsigned i, std::uint8_t out[16]) const noexcept;
  bool set_vector_reg(unsigned i, const std::uint8_t in[16]) noexcept;
  // The saved SIMD/FPU state (x86-64: the FXSAVE-format struct _libc_fpstate; aarch64: the frame's
  // struct fpsimd_context record), or null.
  const void* simd_state() const noexcept;

  siginfo_t* siginfo() const noexcept { return info_; }
  ucontext_t* ucontext() const noexcept { return uc_; }

 private:
  int sig_;
  siginfo_t* info_;
  ucontext_t* uc_;
};

// "SIGSEGV", "SIGBUS", ... or "SIG?" ; async-signal-safe.
const char* signal_name(int sig) noexcept;
// The name of si_code for that signal ("SEGV_MAPERR"), or "?" ; async-signal-safe.
const char* signal_code_name(int sig, int code) noexcept;

}  // namespace faultline
