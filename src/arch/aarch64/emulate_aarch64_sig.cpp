// arch/aarch64/emulate_aarch64_sig.cpp: decoding, emulating and healing A64 loads and stores (signal
// path: no allocation, no locks).
//
// The decoder is a table of the A64 load/store encoding classes (Arm ARM C4.1.66, "Loads and Stores"),
// not a general disassembler. Why not capstone (Debian's libcapstone-dev 4.0.2 decodes these forms): its
// handles are made by cs_open and its instruction buffers by cs_malloc, both allocating, and a handle
// carries per-call state (the last error, the detail buffer), so faults on several threads at once would
// need a pool of prepared handles taken without a lock. The load/store classes are few and regular (every
// instruction is one 32-bit word; the fields sit at fixed bits), so a table of them is short, allocates
// nothing, is safe from any number of threads, and is checked against the CPU (or qemu) by the same
// differential test as the x86-64 emulator.
//
// Emulated (anything else is declined with a reason):
//   LDR/STR of every integer size, LDRSB/LDRSH/LDRSW, with an unsigned scaled immediate, an unscaled
//   immediate (LDUR/STUR), pre- and post-index, and a register offset (LSL, UXTW, SXTW, SXTX, scaled or
//   not); LDP/STP/LDPSW and LDNP/STNP with signed offset, pre- and post-index; SIMD&FP LDR/STR of B, H, S,
//   D and Q registers and LDP/STP of S, D and Q, in every addressing form above.
// Declined by emulate(): exclusives, load-acquire/store-release and atomic forms (not_atomic: emulating
// them here would not be atomic), literal loads and SIMD structure loads (unsupported); these are still
// decoded, so that heal() can move their base register and let them run again (as on x86-64, where a
// LOCK-prefixed instruction is healed but not emulated). Prefetches, unprivileged and pointer-
// authenticated forms are not decoded (unsupported). A SIMD&FP load also updates the frame's SVE registers when it
// carries them (see Aarch64::set_vector_reg).
#include <cstring>

#include "arch/aarch64/cpu_aarch64.hpp"
#include "arch/emulate_isa.hpp"
#include "os/linux/syscall.hpp"

namespace faultline {

namespace {

using A = arch::Aarch64;

using arch::emulation::Decoded;

std::int64_t sign_extend(std::uint64_t v, unsigned bits) {
  const std::uint64_t m = std::uint64_t{1} << (bits - 1);
  return static_cast<std::int64_t>((v ^ m) - m);
}

const char* int_mnemonic(bool load, unsigned size, bool sign, bool unscaled) {
  if (!load) {
    static constexpr const char* kStore[2][4] = {{"strb", "strh", "str", "str"}, {"sturb", "sturh", "stur", "stur"}};
    return kStore[unscaled][size == 1 ? 0 : size == 2 ? 1 : size == 4 ? 2 : 3];
  }
  if (sign) {
    static constexpr const char* kSigned[2][3] = {{"ldrsb", "ldrsh", "ldrsw"}, {"ldursb", "ldursh", "ldursw"}};
    return kSigned[unscaled][size == 1 ? 0 : size == 2 ? 1 : 2];
  }
  static constexpr const char* kLoad[2][4] = {{"ldrb", "ldrh", "ldr", "ldr"}, {"ldurb", "ldurh", "ldur", "ldur"}};
  return kLoad[unscaled][size == 1 ? 0 : size == 2 ? 1 : size == 4 ? 2 : 3];
}

// Size, direction and signedness of the single-register forms from size (31:30), V (26), opc (23:22).
// False for unallocated encodings and prefetches.
bool single_register_kind(std::uint32_t w, Decoded* d) {
  const unsigned size = (w >> 30) & 3, v = (w >> 26) & 1, opc = (w >> 22) & 3;
  d->simd = v != 0;
  if (d->simd) {
    if (size == 0 && (opc & 2) != 0) {
      d->size = 16;  // Q
    } else if ((opc & 2) == 0) {
      d->size = 1u << size;
    } else {
      return false;
    }
    d->load = (opc & 1) != 0;
    return true;
  }
  d->size = 1u << size;
  switch (opc) {
    case 0: d->load = false; return true;
    case 1: d->load = true; d->dest64 = size == 3; return true;
    case 2:  // LDRS* to X; for size 3 this is PRFM
      if (size == 3) return false;
      d->load = d->sign_extend = true;
      return true;
    default:  // LDRS* to W; unallocated for words and double words
      if (size >= 2) return false;
      d->load = d->sign_extend = true;
      d->dest64 = false;
      return true;
  }
}

EmulateStatus decode_word(std::uint32_t w, Decoded* d) {
  if (((w >> 27) & 1) == 0 || ((w >> 25) & 1) != 0) return EmulateStatus::no_memory_operand;
  const unsigned op0 = (w >> 28) & 3;
  d->rt = w & 31;
  d->rn = (w >> 5) & 31;
  if (op0 == 0) {
    // Exclusives, acquire/release, compare-and-swap; with V set, SIMD structure loads and stores. Decoded
    // for heal() (their base register is rn), declined by emulate().
    d->size = 1u << ((w >> 30) & 3);
    d->load = ((w >> 22) & 1) != 0;
    if (((w >> 26) & 1) != 0) {
      d->simd = true;
      d->size = 16;
      d->decline = EmulateStatus::unsupported;
      d->mnemonic = d->load ? "ld1" : "st1";
      return EmulateStatus::ok;
    }
    d->rmw = ((w >> 23) & 1) != 0 && ((w >> 21) & 1) != 0;  // CAS
    d->decline = EmulateStatus::not_atomic;
    d->mnemonic = d->rmw ? "cas" : d->load ? "ldxr" : "stxr";
    return EmulateStatus::ok;
  }
  if (op0 == 1) {
    d->size = 1u << ((w >> 30) & 3);
    if (((w >> 24) & 1) != 0) {  // LDAPUR/STLUR
      d->load = ((w >> 22) & 3) != 0;
      d->imm = sign_extend((w >> 12) & 0x1ff, 9);
      d->decline = EmulateStatus::not_atomic;
      d->mnemonic = d->load ? "ldapur" : "stlur";
      return EmulateStatus::ok;
    }
    d->load = true;  // a literal load: PC-relative
    d->pc_relative = true;
    d->imm = sign_extend((w >> 5) & 0x7ffff, 19) * 4;
    d->decline = EmulateStatus::unsupported;
    d->mnemonic = "ldr";
    return EmulateStatus::ok;
  }
  if (op0 == 2) {  // pairs
    const unsigned opc = (w >> 30) & 3, v = (w >> 26) & 1, type = (w >> 23) & 3;
    d->pair = true;
    d->load = ((w >> 22) & 1) != 0;
    d->rt2 = (w >> 10) & 31;
    d->simd = v != 0;
    if (d->simd) {
      if (opc == 3) return EmulateStatus::undecodable;
      d->size = 4u << opc;
      d->mnemonic = type == 0 ? (d->load ? "ldnp" : "stnp") : (d->load ? "ldp" : "stp");
    } else if (opc == 0) {
      d->size = 4;
      d->dest64 = false;
      d->mnemonic = type == 0 ? (d->load ? "ldnp" : "stnp") : (d->load ? "ldp" : "stp");
    } else if (opc == 1) {
      if (!d->load || type == 0) return EmulateStatus::unsupported;  // STGP (tags), no LDNPSW
      d->size = 4;
      d->sign_extend = true;
      d->mnemonic = "ldpsw";
    } else if (opc == 2) {
      d->size = 8;
      d->mnemonic = type == 0 ? (d->load ? "ldnp" : "stnp") : (d->load ? "ldp" : "stp");
    } else {
      return EmulateStatus::undecodable;
    }
    d->imm = sign_extend((w >> 15) & 0x7f, 7) * static_cast<std::int64_t>(d->size);
    d->writeback = type == 1 || type == 3;
    d->post = type == 1;
    if (d->load && d->rt == d->rt2) return EmulateStatus::undecodable;  // CONSTRAINED UNPREDICTABLE
    return EmulateStatus::ok;
  }
  // op0 == 3: single register forms and atomics.
  const bool unsigned_imm = ((w >> 24) & 1) != 0;
  if (!unsigned_imm && ((w >> 21) & 1) != 0) {
    const unsigned kind = (w >> 10) & 3;
    if (kind == 0) {  // LDADD, SWP, LDAPR, ...: decoded for heal(), declined by emulate()
      d->size = 1u << ((w >> 30) & 3);
      d->load = true;
      d->rmw = !(((w >> 15) & 1) != 0 && ((w >> 12) & 7) == 4);  // all but LDAPR
      d->decline = EmulateStatus::not_atomic;
      d->mnemonic = d->rmw ? "ldadd" : "ldapr";
      return EmulateStatus::ok;
    }
    if (kind != 2) return EmulateStatus::unsupported;  // LDRAA/LDRAB
    if (!single_register_kind(w, d)) return EmulateStatus::unsupported;
    d->rm = (w >> 16) & 31;
    d->extend = (w >> 13) & 7;
    if ((d->extend & 2) == 0) return EmulateStatus::undecodable;
    if (((w >> 12) & 1) != 0) d->shift = d->size == 16 ? 4 : d->size == 8 ? 3 : d->size == 4 ? 2 : d->size == 2 ? 1 : 0;
    d->mnemonic = d->simd ? (d->load ? "ldr" : "str") : int_mnemonic(d->load, d->size, d->sign_extend, false);
    return EmulateStatus::ok;
  }
  if (!single_register_kind(w, d)) return EmulateStatus::unsupported;
  if (unsigned_imm) {
    d->imm = static_cast<std::int64_t>((w >> 10) & 0xfff) * d->size;
    d->mnemonic = d->simd ? (d->load ? "ldr" : "str") : int_mnemonic(d->load, d->size, d->sign_extend, false);
    return EmulateStatus::ok;
  }
  const unsigned kind = (w >> 10) & 3;  // 0 unscaled, 1 post-index, 2 unprivileged, 3 pre-index
  if (kind == 2) return EmulateStatus::unsupported;
  d->imm = sign_extend((w >> 12) & 0x1ff, 9);
  d->writeback = kind != 0;
  d->post = kind == 1;
  if (d->simd) d->mnemonic = kind == 0 ? (d->load ? "ldur" : "stur") : (d->load ? "ldr" : "str");
  else d->mnemonic = int_mnemonic(d->load, d->size, d->sign_extend, kind == 0);
  return EmulateStatus::ok;
}

void fill(const Decoded& d, Instruction* out) {
  *out = Instruction{};
  out->length = 4;
  out->mnemonic = d.mnemonic;
  out->operand_width = d.size * 8;
  out->has_memory = true;
  out->memory.base = d.pc_relative ? static_cast<unsigned>(Reg::pc) : d.rn == 31 ? static_cast<unsigned>(Reg::sp) : d.rn;
  if (d.rm != kNoReg) {
    out->memory.index = d.rm;  // 31 here is the zero register: the offset is 0
    out->memory.scale = 1u << d.shift;
  }
  out->memory.displacement = d.post ? 0 : d.imm;
  out->memory.size = d.pair ? 2 * d.size : d.size;
  out->memory.read = d.load || d.rmw;
  out->memory.write = !d.load || d.rmw;
}

std::uint64_t xreg(const ucontext_t& uc, unsigned r) { return r == 31 ? 0 : uc.uc_mcontext.regs[r]; }

std::uintptr_t effective_address(const ucontext_t& uc, const Decoded& d) {
  if (d.pc_relative) return uc.uc_mcontext.pc + static_cast<std::uintptr_t>(d.imm);
  std::uintptr_t base = d.rn == 31 ? uc.uc_mcontext.sp : uc.uc_mcontext.regs[d.rn];
  if (d.post) return base;
  if (d.rm != kNoReg) {
    std::uint64_t off = xreg(uc, d.rm);
    switch (d.extend) {
      case 2: off = static_cast<std::uint32_t>(off); break;                                  // UXTW
      case 6: off = static_cast<std::uint64_t>(static_cast<std::int32_t>(off)); break;       // SXTW
      default: break;                                                                        // LSL, SXTX
    }
    return base + (off << d.shift);
  }
  return base + static_cast<std::uintptr_t>(d.imm);
}

// A data fault means the CPU fetched the instruction: read it directly. Otherwise (an instruction
// fetch, or a context not from a fault) through process_vm_readv, which fails instead of faulting.
EmulateStatus fetch(const FaultContext& ctx, std::uint32_t* w) {
  const std::uintptr_t pc = ctx.pc();
  if ((pc & 3) != 0) return EmulateStatus::unreadable_pc;
  const bool fetched = ctx.signal() != 0 && (ctx.access() == Access::read || ctx.access() == Access::write);
  if (fetched) {
    std::memcpy(w, reinterpret_cast<const void*>(pc), 4);
    return EmulateStatus::ok;
  }
  return os::raw_read_own_memory(w, reinterpret_cast<const void*>(pc), 4) == 4 ? EmulateStatus::ok
                                                                                : EmulateStatus::unreadable_pc;
}


}  // namespace

namespace arch {

// The access kind of a load/store word, from the same decoder emulation uses: a read, or a write for
// stores and atomic read-modify-writes; unknown for anything it does not decode.
Access Aarch64::classify_load_store(std::uint32_t w) noexcept {
  Decoded d;
  if (decode_word(w, &d) != EmulateStatus::ok) return Access::unknown;
  return d.load && !d.rmw ? Access::read : Access::write;
}

}  // namespace arch

namespace arch::emulation {

EmulateStatus decode_at(const FaultContext& ctx, Decoded* d, Instruction* out) noexcept {
  std::uint32_t w;
  if (EmulateStatus s = fetch(ctx, &w); s != EmulateStatus::ok) return s;
  if (EmulateStatus s = decode_word(w, d); s != EmulateStatus::ok) return s;
  fill(*d, out);
  out->memory.address = effective_address(*ctx.ucontext(), *d);
  return EmulateStatus::ok;
}

EmulateStatus run(FaultContext& ctx, const Decoded& d, const Instruction& in, const MemoryAccessor& mem) noexcept {
  ucontext_t& uc = *ctx.ucontext();
  if (d.simd && A::fpsimd(uc) == nullptr) return EmulateStatus::unsupported;
  // Writeback into a transferred register is CONSTRAINED UNPREDICTABLE: decline it.
  if (d.writeback && d.rn != 31 && !d.simd && (d.rn == d.rt || (d.pair && d.rn == d.rt2))) {
    return EmulateStatus::undecodable;
  }
  if (d.load && (mem.read == nullptr)) return EmulateStatus::access_failed;
  if (!d.load && (mem.write == nullptr)) return EmulateStatus::access_failed;
  const unsigned n = d.pair ? 2 : 1;
  const unsigned regs[2] = {d.rt, d.rt2};
  std::uint8_t buf[2][16] = {};
  if (d.load) {
    for (unsigned k = 0; k < n; ++k) {
      if (!mem.read(in.memory.address + k * d.size, buf[k], d.size, mem.data)) return EmulateStatus::access_failed;
    }
  } else {
    for (unsigned k = 0; k < n; ++k) {
      if (d.simd) A::vector_reg(uc, regs[k], buf[k]);  // the low d.size bytes are stored
      else {
        const std::uint64_t v = xreg(uc, regs[k]);
        std::memcpy(buf[k], &v, d.size);
      }
    }
    for (unsigned k = 0; k < n; ++k) {
      if (!mem.write(in.memory.address + k * d.size, buf[k], d.size, mem.data)) return EmulateStatus::access_failed;
    }
  }
  // Nothing is changed before every access has succeeded.
  if (d.load) {
    for (unsigned k = 0; k < n; ++k) {
      if (d.simd) {
        std::uint8_t v[16] = {};  // a scalar FP load clears the rest of the vector register
        std::memcpy(v, buf[k], d.size);
        A::set_vector_reg(uc, regs[k], v);
        continue;
      }
      if (regs[k] == 31) continue;  // the zero register
      std::uint64_t raw = 0;
      std::memcpy(&raw, buf[k], d.size);
      std::uint64_t value = d.sign_extend ? static_cast<std::uint64_t>(sign_extend(raw, d.size * 8)) : raw;
      if (!d.dest64) value = static_cast<std::uint32_t>(value);
      uc.uc_mcontext.regs[regs[k]] = value;
    }
  }
  if (d.writeback) {
    const std::uintptr_t base = d.rn == 31 ? uc.uc_mcontext.sp : uc.uc_mcontext.regs[d.rn];
    const std::uintptr_t updated = base + static_cast<std::uintptr_t>(d.imm);
    if (d.rn == 31) uc.uc_mcontext.sp = updated;
    else uc.uc_mcontext.regs[d.rn] = updated;
  }
  uc.uc_mcontext.pc += 4;
  return EmulateStatus::ok;
}

EmulateStatus decode_bytes(const std::uint8_t* bytes, std::size_t len, Decoded* d, Instruction* out) noexcept {
  if (len < 4) return EmulateStatus::undecodable;
  std::uint32_t w;
  std::memcpy(&w, bytes, 4);
  if (EmulateStatus s = decode_word(w, d); s != EmulateStatus::ok) return s;
  fill(*d, out);
  return EmulateStatus::ok;
}

// Atomic, exclusive, literal and structure forms are decoded (heal() may move their base register) but
// not emulated.
EmulateStatus check(const Decoded& d, const Instruction&) noexcept { return d.decline; }

// The base register, unless it is the stack pointer; with a register offset, the offset register (not
// the zero register) must not point into moved space.
void pointer_registers(const Decoded& d, const Instruction&, unsigned* reg, unsigned* other) noexcept {
  *reg = d.rn == 31 || d.pc_relative ? kNoReg : d.rn;
  *other = d.rm != kNoReg && d.rm != 31 ? d.rm : kNoReg;
}

}  // namespace arch::emulation

}  // namespace faultline
