/* tests/thread/spin_x86_64.S: a loop that holds known values in every register, for the stop-the-world and
   call-injection tests.

   void faultline_test_spin(const uint64_t* table);
     table: rax rbx rcx rdx rsi rdi rbp r8 r9 r10 r11 r12 r13 r14 r15 (15 qwords, offsets 0..112),
            xmm0..xmm15 (16 x 16 bytes, offset 120), rflags (offset 376).
   Loads them, then spins at faultline_test_spin_loop (`jmp` to itself: flags and registers never
   change). A signal handler ends it by setting the PC to faultline_test_spin_exit, which restores the
   callee-saved registers and returns. */
#include "support/regs_x86_64.inc"
  .text
  .globl faultline_test_spin, faultline_test_spin_loop, faultline_test_spin_exit
  .type faultline_test_spin, @function
  .p2align 4
faultline_test_spin:
  push_callee_saved
  sub $8, %rsp
  load_xmms 120, %rdi
  pushq 376(%rdi)
  popfq
  load_gprs 56
faultline_test_spin_loop:
  jmp faultline_test_spin_loop
faultline_test_spin_exit:
  cld
  add $8, %rsp
  pop_callee_saved
  ret
  .size faultline_test_spin, .-faultline_test_spin
  .section .note.GNU-stack,"",@progbits
