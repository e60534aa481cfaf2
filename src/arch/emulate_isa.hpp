// arch/emulate_isa.hpp: what each architecture provides for decoding, emulating and healing the faulting
// instruction (signal path: everything here is async-signal-safe and allocates nothing).
//
// The public API (faultline/emulate.hpp) is implemented once, in trap/emulate_sig.cpp, over these
// functions; each ISA implements them in arch/<isa>/emulate_<isa>_sig.cpp and defines `Decoded`, its own
// decoded form, in arch/<isa>/emulate_<isa>.hpp.
#pragma once

#include <cstddef>
#include <cstdint>

#include "faultline/emulate.hpp"

#if defined(__x86_64__)
#include "arch/x86_64/emulate_x86_64.hpp"
#elif defined(__aarch64__)
#include "arch/aarch64/emulate_aarch64.hpp"
#endif

namespace faultline::arch::emulation {

// Decodes the instruction at ctx's PC (reading its bytes without faulting) into `d` and `out`, the
// memory operand's address computed from ctx's registers.
EmulateStatus decode_at(const FaultContext& ctx, Decoded* d, Instruction* out) noexcept;
// Decodes `len` bytes (no address computed).
EmulateStatus decode_bytes(const std::uint8_t* bytes, std::size_t len, Decoded* d, Instruction* out) noexcept;
// Whether the decoded instruction is in the emulated set (ok), or why not.
EmulateStatus check(const Decoded& d, const Instruction& in) noexcept;
// Performs it with its memory access through `mem`, updates its destination and flags, advances the PC.
// On anything but ok the context is unchanged.
EmulateStatus run(FaultContext& ctx, const Decoded& d, const Instruction& in, const MemoryAccessor& mem) noexcept;
// For heal(): the register that may hold the object pointer the address was computed from (kNoReg: none
// can, e.g. PC-relative or stack-pointer-based), and another register that must not point into moved
// space for the choice to be certain (kNoReg: none).
void pointer_registers(const Decoded& d, const Instruction& in, unsigned* reg, unsigned* other) noexcept;

}  // namespace faultline::arch::emulation
