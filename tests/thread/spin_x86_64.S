/* tests/spin_x86_64.S: a loop that holds known values in every register, for the stop-the-world and
   call-injection tests.

   void faultline_test_spin(const uint64_t* table);
     table: rax rbx rcx rdx rsi rdi rbp r8 r9 r10 r11 r12 r13 r14 r15 (15 qwords, offsets 0..112),
            xmm0..xmm15 (16 x 16 bytes, offset 120), rflags (offset 376).
   Loads them, then spins at faultline_test_spin_loop (`jmp` to itself: flags and registers never
   change). A signal handler ends it by setting the PC to faultline_test_spin_exit, which restores the
   callee-saved registers and returns. */
  .text
  .globl faultline_test_spin, faultline_test_spin_loop, faultline_test_spin_exit
  .type faultline_test_spin, @function
  .p2align 4
faultline_test_spin:
  push %rbp
  push %rbx
  push %r12
  push %r13
  push %r14
  push %r15
  sub $8, %rsp
  movdqu 120(%rdi), %xmm0
  movdqu 136(%rdi), %xmm1
  movdqu 152(%rdi), %xmm2
  movdqu 168(%rdi), %xmm3
  movdqu 184(%rdi), %xmm4
  movdqu 200(%rdi), %xmm5
  movdqu 216(%rdi), %xmm6
  movdqu 232(%rdi), %xmm7
  movdqu 248(%rdi), %xmm8
  movdqu 264(%rdi), %xmm9
  movdqu 280(%rdi), %xmm10
  movdqu 296(%rdi), %xmm11
  movdqu 312(%rdi), %xmm12
  movdqu 328(%rdi), %xmm13
  movdqu 344(%rdi), %xmm14
  movdqu 360(%rdi), %xmm15
  pushq 376(%rdi)
  popfq
  mov 0(%rdi), %rax
  mov 8(%rdi), %rbx
  mov 16(%rdi), %rcx
  mov 24(%rdi), %rdx
  mov 32(%rdi), %rsi
  mov 48(%rdi), %rbp
  mov 56(%rdi), %r8
  mov 64(%rdi), %r9
  mov 72(%rdi), %r10
  mov 80(%rdi), %r11
  mov 88(%rdi), %r12
  mov 96(%rdi), %r13
  mov 104(%rdi), %r14
  mov 112(%rdi), %r15
  mov 40(%rdi), %rdi
faultline_test_spin_loop:
  jmp faultline_test_spin_loop
faultline_test_spin_exit:
  cld
  add $8, %rsp
  pop %r15
  pop %r14
  pop %r13
  pop %r12
  pop %rbx
  pop %rbp
  ret
  .size faultline_test_spin, .-faultline_test_spin
  .section .note.GNU-stack,"",@progbits
