// arch/x86_64/stack_switch_x86_64_sig.cpp: calling a function on another stack (signal path).
//
// The crash report runs on a spare stack when the one the handler runs on has too little room left (a
// small alternate stack a thread set itself). A leaf of assembly: it saves the frame pointer, moves the
// stack pointer to the new stack, calls, and moves it back. It has call-frame information, so that a
// debugger unwinds from the report's frames to the handler's. endbr64 keeps it a valid indirect-branch
// target under CET.
#include "arch/arch.hpp"

extern "C" void faultline_x86_64_call_on_stack(void (*fn)(void*), void* arg, void* top) noexcept;

asm(R"(
    .text
    .p2align 4
    .globl faultline_x86_64_call_on_stack
    .hidden faultline_x86_64_call_on_stack
    .type faultline_x86_64_call_on_stack, @function
faultline_x86_64_call_on_stack:
    .cfi_startproc
    endbr64
    pushq %rbp
    .cfi_def_cfa_offset 16
    .cfi_offset %rbp, -16
    movq %rsp, %rbp
    .cfi_def_cfa_register %rbp
    andq $-16, %rdx
    movq %rdx, %rsp
    movq %rdi, %rax
    movq %rsi, %rdi
    callq *%rax
    movq %rbp, %rsp
    popq %rbp
    .cfi_def_cfa %rsp, 8
    ret
    .cfi_endproc
    .size faultline_x86_64_call_on_stack, .-faultline_x86_64_call_on_stack
)");

namespace faultline::arch {

void X86_64::call_on_stack(void (*fn)(void*), void* arg, void* top) noexcept {
  faultline_x86_64_call_on_stack(fn, arg, top);
}

}  // namespace faultline::arch
