/* tests/thread/spin_aarch64.S: a loop that holds known values in every register, for the stop-the-world
   and call-injection tests (the aarch64 twin of spin_x86_64.S).

   void faultline_test_spin(const uint64_t* table);
     table: x0-x17, x19-x28 (28 qwords, offsets 0..216; x18 is the platform register, x29/x30 frame and
            link), v0..v31 (32 x 16 bytes, offset 224), nzcv (offset 736).
   Loads them, then spins at faultline_test_spin_loop (`b` to itself: flags and registers never change).
   A signal handler ends it by setting the PC to faultline_test_spin_exit, which restores the
   callee-saved registers and returns. */
  .text
  .globl faultline_test_spin, faultline_test_spin_loop, faultline_test_spin_exit
  .type faultline_test_spin, %function
  .p2align 4
faultline_test_spin:
  stp x29, x30, [sp, #-160]!
  mov x29, sp
  stp x19, x20, [sp, #16]
  stp x21, x22, [sp, #32]
  stp x23, x24, [sp, #48]
  stp x25, x26, [sp, #64]
  stp x27, x28, [sp, #80]
  stp d8, d9, [sp, #96]
  stp d10, d11, [sp, #112]
  stp d12, d13, [sp, #128]
  stp d14, d15, [sp, #144]
  add x30, x0, #224
  ld1 {v0.2d, v1.2d, v2.2d, v3.2d}, [x30], #64
  ld1 {v4.2d, v5.2d, v6.2d, v7.2d}, [x30], #64
  ld1 {v8.2d, v9.2d, v10.2d, v11.2d}, [x30], #64
  ld1 {v12.2d, v13.2d, v14.2d, v15.2d}, [x30], #64
  ld1 {v16.2d, v17.2d, v18.2d, v19.2d}, [x30], #64
  ld1 {v20.2d, v21.2d, v22.2d, v23.2d}, [x30], #64
  ld1 {v24.2d, v25.2d, v26.2d, v27.2d}, [x30], #64
  ld1 {v28.2d, v29.2d, v30.2d, v31.2d}, [x30], #64
  ldr x1, [x0, #736]
  msr nzcv, x1
  ldp x1, x2, [x0, #8]
  ldp x3, x4, [x0, #24]
  ldp x5, x6, [x0, #40]
  ldp x7, x8, [x0, #56]
  ldp x9, x10, [x0, #72]
  ldp x11, x12, [x0, #88]
  ldp x13, x14, [x0, #104]
  ldp x15, x16, [x0, #120]
  ldp x17, x19, [x0, #136]
  ldp x20, x21, [x0, #152]
  ldp x22, x23, [x0, #168]
  ldp x24, x25, [x0, #184]
  ldp x26, x27, [x0, #200]
  ldr x28, [x0, #216]
  ldr x0, [x0]
faultline_test_spin_loop:
  b faultline_test_spin_loop
faultline_test_spin_exit:
  ldp d8, d9, [sp, #96]
  ldp d10, d11, [sp, #112]
  ldp d12, d13, [sp, #128]
  ldp d14, d15, [sp, #144]
  ldp x19, x20, [sp, #16]
  ldp x21, x22, [sp, #32]
  ldp x23, x24, [sp, #48]
  ldp x25, x26, [sp, #64]
  ldp x27, x28, [sp, #80]
  ldp x29, x30, [sp], #160
  ret
  .size faultline_test_spin, .-faultline_test_spin
  .section .note.GNU-stack,"",%progbits
