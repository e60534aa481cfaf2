// arch/x86_64/inject_x86_64_sig.cpp: call injection on x86-64 (signal path).
//
// The interrupted context is copied, FP/SIMD state included, onto the interrupted stack below the
// 128-byte red zone, laid out as the kernel lays out a signal frame's ucontext. When the handler runs on
// that same stack, its signal frame and its own frames lie there too, so the copy goes below the
// handler's frames instead, and asynchronous signals stay blocked until the handler returns (the kernel
// restores the interrupted mask at sigreturn), so that no nested signal frame lands on the copy. The live context is
// then pointed at a trampoline with the stack pointer below that copy. When the handler returns, the
// thread runs the trampoline: it calls fn(arg) as ordinary code, then points the stack pointer at the
// copy and issues rt_sigreturn, which makes the kernel restore every general register, the flags, the
// FP/SIMD state and the signal mask exactly as they were at the interruption.
#include <sys/syscall.h>

#include <cstring>

#include "arch/x86_64/cpu_x86_64.hpp"
#include "os/linux/syscall.hpp"

// The trampoline. On entry (set up by inject_call): rdi = fn, rsi = arg, rbx = the saved ucontext,
// rsp 16-byte aligned. rbx is callee-saved, so it survives the call.
asm(R"(
  .text
  .globl faultline_inject_trampoline
  .type faultline_inject_trampoline, @function
  .p2align 4
faultline_inject_trampoline:
  .cfi_startproc
  .cfi_undefined rip
  mov %rdi, %rax
  mov %rsi, %rdi
  call *%rax
  mov %rbx, %rsp
  mov $15, %eax
  syscall
  ud2
  .cfi_endproc
  .size faultline_inject_trampoline, .-faultline_inject_trampoline
)");

extern "C" void faultline_inject_trampoline();

namespace faultline::arch {

static_assert(SYS_rt_sigreturn == 15);

int X86_64::inject_call(ucontext_t& uc, void (*fn)(void*), void* arg, std::uintptr_t stack_lo) noexcept {
  const std::size_t fp_size = simd_state_size(uc);
  if (fp_size == 0) return -1;
  // rt_sigreturn re-applies the saved alternate-stack settings and refuses (killing the thread) when it
  // runs on the alternate stack: the interrupted code must not have been on it.
  if (uc.uc_stack.ss_flags & SS_ONSTACK) return -3;
  const std::uintptr_t sp = X86_64::sp(uc);
  std::uintptr_t top = sp - kRedZone;
  const auto here = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
  if (here < top && top - here < (std::uintptr_t{8} << 20)) top = here - 2048;  // below this handler's frames
  // Below that: the FP state (64-byte aligned, as XRSTOR requires), then the ucontext.
  const std::uintptr_t fp_at = (top - fp_size) & ~std::uintptr_t{63};
  const std::uintptr_t uc_at = (fp_at - sizeof(ucontext_t)) & ~std::uintptr_t{15};
  // The call's frame: 16-byte aligned before the call pushes the return address, with room to spare.
  const std::uintptr_t call_sp = (uc_at - 64) & ~std::uintptr_t{15};
  if (stack_lo != 0 && call_sp < stack_lo + 4096) return -2;

  // Until the handler returns, only synchronous faults may interrupt it.
  const std::uint64_t async = ~(os::sigbit(SIGSEGV) | os::sigbit(SIGBUS) | os::sigbit(SIGILL) | os::sigbit(SIGFPE) |
                                os::sigbit(SIGTRAP));
  os::raw_sigprocmask(SIG_BLOCK, &async, nullptr);
  auto* saved = reinterpret_cast<ucontext_t*>(uc_at);
  std::memcpy(reinterpret_cast<void*>(fp_at), uc.uc_mcontext.fpregs, fp_size);
  std::memcpy(saved, &uc, sizeof(ucontext_t));
  saved->uc_mcontext.fpregs = reinterpret_cast<fpregset_t>(fp_at);
  saved->uc_link = nullptr;

  auto* g = uc.uc_mcontext.gregs;
  g[REG_RIP] = reinterpret_cast<greg_t>(&faultline_inject_trampoline);
  g[REG_RSP] = static_cast<greg_t>(call_sp);
  g[REG_RDI] = reinterpret_cast<greg_t>(fn);
  g[REG_RSI] = reinterpret_cast<greg_t>(arg);
  g[REG_RBX] = static_cast<greg_t>(uc_at);
  g[REG_EFL] &= ~static_cast<greg_t>(0x400);  // DF clear, as the ABI requires at a call
  return 0;
}

}  // namespace faultline::arch
