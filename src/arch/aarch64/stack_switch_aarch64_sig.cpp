// arch/aarch64/stack_switch_aarch64_sig.cpp: calling a function on another stack (signal path).
//
// The crash report runs on a spare stack when the one the handler runs on has too little room left (a
// small alternate stack a thread set itself). A leaf of assembly: it saves the frame record, moves the
// stack pointer to the new stack, calls, and moves it back. It has call-frame information, so that a
// debugger unwinds from the report's frames to the handler's. `hint #34` (BTI c) keeps it a valid
// indirect-branch target where branch target identification is on; elsewhere it is a no-op.
#include "arch/arch.hpp"

extern "C" void faultline_aarch64_call_on_stack(void (*fn)(void*), void* arg, void* top) noexcept;

asm(R"(
    .text
    .p2align 4
    .globl faultline_aarch64_call_on_stack
    .hidden faultline_aarch64_call_on_stack
    .type faultline_aarch64_call_on_stack, %function
faultline_aarch64_call_on_stack:
    .cfi_startproc
    hint #34
    stp x29, x30, [sp, #-16]!
    .cfi_def_cfa_offset 16
    .cfi_offset x29, -16
    .cfi_offset x30, -8
    mov x29, sp
    .cfi_def_cfa_register x29
    and x2, x2, #0xfffffffffffffff0
    mov sp, x2
    mov x16, x0
    mov x0, x1
    blr x16
    mov sp, x29
    .cfi_def_cfa_register sp
    ldp x29, x30, [sp], #16
    .cfi_def_cfa_offset 0
    .cfi_restore x29
    .cfi_restore x30
    ret
    .cfi_endproc
    .size faultline_aarch64_call_on_stack, .-faultline_aarch64_call_on_stack
)");

namespace faultline::arch {

void Aarch64::call_on_stack(void (*fn)(void*), void* arg, void* top) noexcept {
  faultline_aarch64_call_on_stack(fn, arg, top);
}

}  // namespace faultline::arch
