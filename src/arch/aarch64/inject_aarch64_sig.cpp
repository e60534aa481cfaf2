// arch/aarch64/inject_aarch64_sig.cpp: call injection on aarch64 (signal path).
//
// As on x86-64 (arch/x86_64/inject_x86_64_sig.cpp): the interrupted context is copied onto the
// interrupted stack (below this handler's own frames when the handler runs on that same stack), laid out
// as the kernel's struct rt_sigframe (a siginfo, then the ucontext with every record of the frame, and
// the extra_context area when the frame has one, its pointer fixed to the copy). Asynchronous signals
// stay blocked until the handler returns, so no nested frame lands on the copy. The live context is
// pointed at a trampoline that calls fn(arg) as ordinary code, then sets sp to the copy and issues
// rt_sigreturn: the kernel restores x0-x30, sp, pc, pstate, the FP/SIMD (and SVE) state and the signal
// mask exactly as they were. AAPCS64 has no red zone, so nothing below the interrupted sp is live.
#include <sys/syscall.h>

#include <cstring>

#include "arch/aarch64/cpu_aarch64.hpp"
#include "os/linux/syscall.hpp"

// The trampoline. On entry (set up by inject_call): x0 = fn, x1 = arg, x19 = the saved rt_sigframe,
// sp 16-byte aligned. x19 is callee-saved, so it survives the call.
asm(R"(
  .text
  .globl faultline_inject_trampoline
  .type faultline_inject_trampoline, %function
  .p2align 4
faultline_inject_trampoline:
  .cfi_startproc
  .cfi_undefined x30
  mov x16, x0
  mov x0, x1
  blr x16
  mov sp, x19
  mov x8, #139
  svc #0
  brk #0
  .cfi_endproc
  .size faultline_inject_trampoline, .-faultline_inject_trampoline
)");

extern "C" void faultline_inject_trampoline();

namespace faultline::arch {

static_assert(SYS_rt_sigreturn == 139);

int Aarch64::inject_call(ucontext_t& uc, void (*fn)(void*), void* arg, std::uintptr_t stack_lo) noexcept {
  if (fpsimd(uc) == nullptr) return -1;
  // rt_sigreturn re-applies the saved alternate-stack settings and refuses (killing the thread) when it
  // runs on the alternate stack: the interrupted code must not have been on it.
  if (uc.uc_stack.ss_flags & SS_ONSTACK) return -3;

  // The extra_context area, if the frame has one (long SVE vectors): copied along.
  const auto* extra = static_cast<const std::uint8_t*>(find_record(uc, kExtraMagic));
  std::uint64_t extra_datap = 0;
  std::uint32_t extra_size = 0;
  if (extra != nullptr) {
    std::memcpy(&extra_datap, extra + 8, 8);
    std::memcpy(&extra_size, extra + 16, 4);
  }

  const std::uintptr_t sp = Aarch64::sp(uc);
  std::uintptr_t top = sp - kRedZone;
  const auto here = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
  if (here < top && top - here < (std::uintptr_t{8} << 20)) top = here - 2048;  // below this handler's frames
  const std::size_t frame_size = sizeof(siginfo_t) + sizeof(ucontext_t);
  const std::uintptr_t extra_at = (top - extra_size) & ~std::uintptr_t{15};
  const std::uintptr_t frame_at = (extra_at - frame_size) & ~std::uintptr_t{15};
  const std::uintptr_t call_sp = (frame_at - 64) & ~std::uintptr_t{15};
  if (stack_lo != 0 && call_sp < stack_lo + 4096) return -2;

  // Until the handler returns, only synchronous faults may interrupt it.
  const std::uint64_t async = ~(os::sigbit(SIGSEGV) | os::sigbit(SIGBUS) | os::sigbit(SIGILL) | os::sigbit(SIGFPE) |
                                os::sigbit(SIGTRAP));
  os::raw_sigprocmask(SIG_BLOCK, &async, nullptr);
  std::memset(reinterpret_cast<void*>(frame_at), 0, sizeof(siginfo_t));
  auto* saved = reinterpret_cast<ucontext_t*>(frame_at + sizeof(siginfo_t));
  std::memcpy(saved, &uc, sizeof(ucontext_t));
  saved->uc_link = nullptr;
  if (extra != nullptr) {
    std::memcpy(reinterpret_cast<void*>(extra_at), reinterpret_cast<const void*>(extra_datap), extra_size);
    // The record sits at the same offset in the copied __reserved; point it at the copied area.
    const std::ptrdiff_t off = extra - reinterpret_cast<const std::uint8_t*>(uc.uc_mcontext.__reserved);
    std::uint8_t* copied = reinterpret_cast<std::uint8_t*>(saved->uc_mcontext.__reserved) + off;
    const std::uint64_t datap = extra_at;
    std::memcpy(copied + 8, &datap, 8);
  }

  uc.uc_mcontext.pc = reinterpret_cast<std::uintptr_t>(&faultline_inject_trampoline);
  uc.uc_mcontext.sp = call_sp;
  uc.uc_mcontext.regs[0] = reinterpret_cast<std::uintptr_t>(fn);
  uc.uc_mcontext.regs[1] = reinterpret_cast<std::uintptr_t>(arg);
  uc.uc_mcontext.regs[19] = frame_at;
  uc.uc_mcontext.regs[30] = 0;                           // no return address: the call ends in rt_sigreturn
  uc.uc_mcontext.pstate &= ~std::uint64_t{0xc00};        // BTYPE: the trampoline is not a branch target
  return 0;
}

}  // namespace faultline::arch
