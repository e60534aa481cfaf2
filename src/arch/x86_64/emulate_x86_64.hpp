// arch/x86_64/emulate_x86_64.hpp: the decoded form of an x86-64 instruction for the emulator (signal
// path): Zydis's instruction and operands, decoded into caller-provided storage without allocating.
#pragma once

#include <Zydis/Zydis.h>

namespace faultline::arch::emulation {

struct Decoded {
  ZydisDecodedInstruction insn;
  ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
};

}  // namespace faultline::arch::emulation
