/* tests/trap/run_insn_x86_64.S: runs one instruction with every register set from a state block, then saves
   every register back into it (for the emulation differential tests).

   void faultline_test_run_insn(State* s);
     State: rax rbx rcx rdx rsi rdi rbp (rsp unused) r8..r15 at 0..127 (Reg order), rflags at 128,
            xmm0..15 at 144 (16 bytes each).
   The instruction lives in a buffer whose address is in faultline_test_insn_ptr; it must end with a
   jump to faultline_test_insn_return (the test appends `jmp *0(%rip)` + the address). It must not
   touch rsp. Not thread-safe (the slots are global). */
#include "support/regs_x86_64.inc"
  .data
  .p2align 3
saved_rsp: .quad 0
state_ptr: .quad 0
rax_slot: .quad 0
flags_slot: .quad 0
  .globl faultline_test_insn_ptr
faultline_test_insn_ptr: .quad 0

  .text
  .globl faultline_test_run_insn, faultline_test_insn_return
  .type faultline_test_run_insn, @function
  .p2align 4
faultline_test_run_insn:
  push_callee_saved
  mov %rsp, saved_rsp(%rip)
  mov %rdi, state_ptr(%rip)
  load_xmms 144, %rdi
  pushq 128(%rdi)
  popfq
  load_gprs 64
  jmp *faultline_test_insn_ptr(%rip)
faultline_test_insn_return:
  pushfq
  popq flags_slot(%rip)
  mov %rax, rax_slot(%rip)
  mov state_ptr(%rip), %rax
  mov %rbx, 8(%rax)
  mov %rcx, 16(%rax)
  mov %rdx, 24(%rax)
  mov %rsi, 32(%rax)
  mov %rdi, 40(%rax)
  mov %rbp, 48(%rax)
  mov %r8, 64(%rax)
  mov %r9, 72(%rax)
  mov %r10, 80(%rax)
  mov %r11, 88(%rax)
  mov %r12, 96(%rax)
  mov %r13, 104(%rax)
  mov %r14, 112(%rax)
  mov %r15, 120(%rax)
  mov rax_slot(%rip), %rcx
  mov %rcx, 0(%rax)
  mov flags_slot(%rip), %rcx
  mov %rcx, 128(%rax)
  store_xmms 144, %rax
  cld
  mov saved_rsp(%rip), %rsp
  pop_callee_saved
  ret
  .size faultline_test_run_insn, .-faultline_test_run_insn
  .section .note.GNU-stack,"",@progbits
