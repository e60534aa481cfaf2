/* tests/trap/run_insn_aarch64.S: runs one instruction with every register set from a state block, then
   saves every register back into it (for the emulation differential tests; the aarch64 twin of
   run_insn_x86_64.S).

   void faultline_test_run_insn(State* s);
     State: x0..x30 at 0..247, nzcv at 248, v0..v31 at 256 (16 bytes each).
   x16 and x17 (the intra-procedure-call scratch registers) carry the harness and are not loaded; x18
   (the platform register) is left alone. The instruction lives in a buffer whose address is in
   faultline_test_insn_ptr; it must be followed by a branch to faultline_test_insn_return through x17
   (the test appends `ldr x17, lit; br x17; nop; lit: .quad faultline_test_insn_return`). It must not
   use sp. Not thread-safe (the slots are global). */
#include "support/regs_aarch64.inc"
  .data
  .p2align 3
saved_sp: .quad 0
state_ptr: .quad 0
x0_slot: .quad 0
flags_slot: .quad 0
  .globl faultline_test_insn_ptr
faultline_test_insn_ptr: .quad 0

  .text
  .globl faultline_test_run_insn, faultline_test_insn_return
  .type faultline_test_run_insn, %function
  .p2align 4
faultline_test_run_insn:
  push_callee_saved
  adrp x16, saved_sp
  mov x17, sp
  str x17, [x16, :lo12:saved_sp]
  adrp x16, state_ptr
  str x0, [x16, :lo12:state_ptr]
  add x16, x0, #256
  load_vregs x16
  ldr x16, [x0, #248]
  msr nzcv, x16
  adrp x17, faultline_test_insn_ptr
  ldr x17, [x17, :lo12:faultline_test_insn_ptr]
  load_gprs x0
  ldr x0, [x0]
  br x17
faultline_test_insn_return:
  adrp x16, x0_slot
  str x0, [x16, :lo12:x0_slot]
  mrs x17, nzcv
  adrp x16, flags_slot
  str x17, [x16, :lo12:flags_slot]
  adrp x0, state_ptr
  ldr x0, [x0, :lo12:state_ptr]
  store_gprs x0
  adrp x16, x0_slot
  ldr x16, [x16, :lo12:x0_slot]
  str x16, [x0]
  adrp x16, flags_slot
  ldr x16, [x16, :lo12:flags_slot]
  str x16, [x0, #248]
  add x16, x0, #256
  store_vregs x16
  adrp x16, saved_sp
  ldr x17, [x16, :lo12:saved_sp]
  mov sp, x17
  pop_callee_saved
  ret
  .size faultline_test_run_insn, .-faultline_test_run_insn
  .section .note.GNU-stack,"",%progbits
