/* tests/run_insn_x86_64.S: runs one instruction with every register set from a state block, then saves
   every register back into it (for the emulation differential tests).

   void faultline_test_run_insn(State* s);
     State: rax rbx rcx rdx rsi rdi rbp (rsp unused) r8..r15 at 0..127 (Reg order), rflags at 128,
            xmm0..15 at 144 (16 bytes each).
   The instruction lives in a buffer whose address is in faultline_test_insn_ptr; it must end with a
   jump to faultline_test_insn_return (the test appends `jmp *0(%rip)` + the address). It must not
   touch rsp. Not thread-safe (the slots are global). */
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
  push %rbp
  push %rbx
  push %r12
  push %r13
  push %r14
  push %r15
  mov %rsp, saved_rsp(%rip)
  mov %rdi, state_ptr(%rip)
  movdqu 144(%rdi), %xmm0
  movdqu 160(%rdi), %xmm1
  movdqu 176(%rdi), %xmm2
  movdqu 192(%rdi), %xmm3
  movdqu 208(%rdi), %xmm4
  movdqu 224(%rdi), %xmm5
  movdqu 240(%rdi), %xmm6
  movdqu 256(%rdi), %xmm7
  movdqu 272(%rdi), %xmm8
  movdqu 288(%rdi), %xmm9
  movdqu 304(%rdi), %xmm10
  movdqu 320(%rdi), %xmm11
  movdqu 336(%rdi), %xmm12
  movdqu 352(%rdi), %xmm13
  movdqu 368(%rdi), %xmm14
  movdqu 384(%rdi), %xmm15
  pushq 128(%rdi)
  popfq
  mov 0(%rdi), %rax
  mov 8(%rdi), %rbx
  mov 16(%rdi), %rcx
  mov 24(%rdi), %rdx
  mov 32(%rdi), %rsi
  mov 48(%rdi), %rbp
  mov 64(%rdi), %r8
  mov 72(%rdi), %r9
  mov 80(%rdi), %r10
  mov 88(%rdi), %r11
  mov 96(%rdi), %r12
  mov 104(%rdi), %r13
  mov 112(%rdi), %r14
  mov 120(%rdi), %r15
  mov 40(%rdi), %rdi
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
  movdqu %xmm0, 144(%rax)
  movdqu %xmm1, 160(%rax)
  movdqu %xmm2, 176(%rax)
  movdqu %xmm3, 192(%rax)
  movdqu %xmm4, 208(%rax)
  movdqu %xmm5, 224(%rax)
  movdqu %xmm6, 240(%rax)
  movdqu %xmm7, 256(%rax)
  movdqu %xmm8, 272(%rax)
  movdqu %xmm9, 288(%rax)
  movdqu %xmm10, 304(%rax)
  movdqu %xmm11, 320(%rax)
  movdqu %xmm12, 336(%rax)
  movdqu %xmm13, 352(%rax)
  movdqu %xmm14, 368(%rax)
  movdqu %xmm15, 384(%rax)
  cld
  mov saved_rsp(%rip), %rsp
  pop %r15
  pop %r14
  pop %r13
  pop %r12
  pop %rbx
  pop %rbp
  ret
  .size faultline_test_run_insn, .-faultline_test_run_insn
  .section .note.GNU-stack,"",@progbits
