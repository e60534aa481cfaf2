// faultline/emulate.hpp: decoding the faulting instruction, emulating its memory access elsewhere, and
// healing the register that held a stale pointer (x86-64 and aarch64).
//
// A fault handler that knows which instruction faulted can do more than unprotect a page:
//   - decode()   what the instruction is: length, mnemonic, operand width, its memory operand;
//   - emulate()  perform the instruction's access against another address (or through a callback),
//                update its destination register and the flags exactly as the CPU would, and advance
//                the PC past it: the thread resumes after the instruction, the protected page untouched;
//   - heal()     rewrite the register the faulting address was computed from by the distance its object
//                moved, and let the instruction run again against the object's new copy.
// That is what a garbage collector's concurrent relocation needs while old space is protected and
// mutators keep running (see examples/relocation.cpp).
//
// Decoding uses Zydis (Debian's libzydis-dev) on x86-64 and a table of the A64 load/store classes on
// aarch64; neither allocates. The instruction bytes of a data fault are read directly (the CPU has just
// fetched them); otherwise with process_vm_readv, so an unreadable PC is an error, not a nested fault.
// Everything here is async-signal-safe and allocates nothing.
//
// Emulated instructions on x86-64 (anything else is declined with a reason, so the caller can fall back):
//   MOV between a register and memory, and immediate to memory (1, 2, 4, 8 bytes); MOVZX, MOVSX, MOVSXD
//   from memory; 16-byte SSE loads and stores MOVDQU, MOVDQA, MOVUPS, MOVAPS, MOVUPD, MOVAPD; the memory
//   forms of MOVD and MOVQ; CMP and TEST with a memory operand; ADD, SUB, AND, OR, XOR with a memory
//   source or destination. Flags are computed by running the same operation on the CPU, so they match it
//   exactly, including the ones the manual leaves undefined. XCHG and LOCK-prefixed instructions are
//   declined: their emulation here would not be atomic. VEX/EVEX forms are declined.
// On aarch64: LDR/STR of every integer size, LDRSB/LDRSH/LDRSW, with an unsigned scaled immediate, an
//   unscaled immediate (LDUR/STUR), pre- and post-index, and a register offset (LSL, UXTW, SXTW, SXTX);
//   LDP/STP/LDPSW and LDNP/STNP; SIMD&FP LDR/STR of B, H, S, D, Q and LDP/STP of S, D, Q (a scalar load
//   clears the rest of the vector register, in the SVE record too when the frame has one). Exclusive,
//   acquire/release and atomic forms decode (heal() may move their base register) but emulate() declines
//   them (not_atomic); literal loads and SIMD structure loads decode but are not emulated (unsupported).
//   The Reg numbering of `Instruction` is aarch64's (faultline/regs.hpp); `segment` is never set there.
#pragma once

#include <cstddef>
#include <cstdint>

#include "faultline/context.hpp"
#include "faultline/regs.hpp"

namespace faultline {

// Why decode/emulate/heal did not do what was asked.
enum class EmulateStatus : std::uint8_t {
  ok,
  unreadable_pc,      // the instruction bytes could not be read
  undecodable,        // Zydis could not decode them
  no_memory_operand,  // the instruction does not access memory through a ModRM operand
  unsupported,        // not in the emulated set (the mnemonic says which)
  not_atomic,         // XCHG or LOCK: declined rather than emulated non-atomically
  vex,                // VEX/EVEX encoded
  segment,            // an FS/GS segment override
  access_failed,      // the memory accessor failed (the redirected address is not accessible)
  not_a_pointer,      // heal: no register provably holds a pointer into the object
  not_forwarded,      // heal: the forwarding function does not know the faulting address
};
const char* emulate_status_name(EmulateStatus s) noexcept;

inline constexpr unsigned kNoReg = ~0u;

// A decoded instruction. Register fields use Reg numbering (faultline/regs.hpp) or kNoReg.
struct Instruction {
  unsigned length = 0;
  const char* mnemonic = "";   // Zydis's name ("mov", "add", ...), static storage
  unsigned operand_width = 0;  // bits
  bool has_memory = false;
  struct Memory {
    unsigned segment = kNoReg;  // only fs/gs matter on x86-64: 100 = fs, 101 = gs
    unsigned base = kNoReg;     // Reg, or 16 (rip) for RIP-relative
    unsigned index = kNoReg;
    unsigned scale = 0;
    std::int64_t displacement = 0;
    unsigned size = 0;          // bytes accessed
    bool read = false, write = false;
    std::uintptr_t address = 0; // effective address computed from the context (decode(ctx, ...))
  } memory;
  bool lock = false;
};

// Decodes the instruction at ctx's PC, computing the memory operand's address from ctx's registers.
EmulateStatus decode(const FaultContext& ctx, Instruction* out) noexcept;
// Decodes `len` bytes (no address computed).
EmulateStatus decode_bytes(const std::uint8_t* bytes, std::size_t len, Instruction* out) noexcept;

// Where an emulated access goes. `read` fills `size` bytes from `address`; `write` stores them. Return
// false if the access cannot be made (the instruction is then not emulated: EmulateStatus::access_failed).
struct MemoryAccessor {
  bool (*read)(std::uintptr_t address, void* buf, std::size_t size, void* data) = nullptr;
  bool (*write)(std::uintptr_t address, const void* buf, std::size_t size, void* data) = nullptr;
  void* data = nullptr;
};

// Emulates the faulting instruction with its memory access going through `mem` (at the instruction's own
// effective address), then advances the PC. On anything but ok the context is unchanged.
EmulateStatus emulate(FaultContext& ctx, const MemoryAccessor& mem) noexcept;
// The same with the access redirected to `target` (the instruction's effective address is replaced by
// `target`; its bytes are read and written there directly).
EmulateStatus emulate(FaultContext& ctx, std::uintptr_t target) noexcept;

// The forwarding function of heal(): the new address of whatever lies at `old_address` (same offset in
// the object's new copy), or 0 when it has not moved / is unknown. Runs in signal context.
using ForwardFn = std::uintptr_t (*)(std::uintptr_t old_address, void* data);

// Heals the register the faulting address was computed from: the base register (or the index register
// when there is no base and the scale is 1) must hold an address that forwards by the same distance as
// the fault address (so it provably points into the same moved object); it is rewritten by that
// distance and the instruction re-executes. Declined (not_a_pointer) for RIP-relative operands, when
// both base and index point into moved space, or when the register's own value does not forward alike.
EmulateStatus heal(FaultContext& ctx, ForwardFn forward, void* data) noexcept;

}  // namespace faultline
