/* tests/thread/spin_aarch64.S: a loop that holds known values in every register, for the stop-the-world
   and call-injection tests (the aarch64 twin of spin_x86_64.S).

   void faultline_test_spin(const uint64_t* table);
     table: x0..x30 (x<n> at 8 * n, offsets 0..240), v0..v31 (32 x 16 bytes, offset 248), nzcv (offset 760).
   Loads them, then spins at faultline_test_spin_loop (`b` to itself: flags and registers never change).
   A signal handler ends it by setting the PC to faultline_test_spin_exit, which restores the
   callee-saved registers from the stack and returns. */
#include "support/regs_aarch64.inc"
  .text
  .globl faultline_test_spin, faultline_test_spin_loop, faultline_test_spin_exit
  .type faultline_test_spin, %function
  .p2align 4
faultline_test_spin:
  push_callee_saved
  add x30, x0, #248
  load_vregs x30
  ldr x1, [x0, #760]
  msr nzcv, x1
  load_gprs x0
  ldp x16, x17, [x0, #128]
  ldr x18, [x0, #144]
  ldr x0, [x0]
faultline_test_spin_loop:
  b faultline_test_spin_loop
faultline_test_spin_exit:
  pop_callee_saved
  ret
  .size faultline_test_spin, .-faultline_test_spin
  .section .note.GNU-stack,"",%progbits
