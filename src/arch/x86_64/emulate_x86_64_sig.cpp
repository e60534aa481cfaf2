// arch/x86_64/emulate_x86_64_sig.cpp: decode (Zydis), emulate and heal the faulting instruction (signal
// path). See faultline/emulate.hpp.
//
// Zydis decodes into caller-provided structures and never allocates; its decoder object lives on the
// stack. ALU results and flags come from running the same operation on the CPU (inline assembly on
// register copies), so they match the hardware bit for bit, undefined flags included.
#include <cstring>

#include "arch/emulate_isa.hpp"
#include "arch/x86_64/cpu_x86_64.hpp"
#include "os/linux/syscall.hpp"

namespace faultline {

namespace {

using arch::emulation::Decoded;

constexpr std::uint64_t kArithFlags = 0x8D5;  // CF PF AF ZF SF OF
constexpr unsigned kRip = static_cast<unsigned>(Reg::rip);

// A general register operand: which Reg, how wide, and whether it is AH/BH/CH/DH.
struct GprRef {
  unsigned reg = kNoReg;
  unsigned bits = 0;
  bool high = false;
};

// Zydis lists the 64-bit general registers in their encoding order (rax, rcx, rdx, rbx, rsp, rbp, rsi,
// rdi, r8..r15); this is that order in faultline's Reg.
constexpr Reg kByEncoding[16] = {Reg::rax, Reg::rcx, Reg::rdx, Reg::rbx, Reg::rsp, Reg::rbp, Reg::rsi, Reg::rdi,
                                 Reg::r8,  Reg::r9,  Reg::r10, Reg::r11, Reg::r12, Reg::r13, Reg::r14, Reg::r15};
static_assert(ZYDIS_REGISTER_RCX == ZYDIS_REGISTER_RAX + 1 && ZYDIS_REGISTER_RDI == ZYDIS_REGISTER_RAX + 7 &&
              ZYDIS_REGISTER_R15 == ZYDIS_REGISTER_RAX + 15, "Zydis's 64-bit registers in encoding order");

unsigned reg_of_64(ZydisRegister r) noexcept {
  if (r == ZYDIS_REGISTER_RIP) return kRip;
  if (r < ZYDIS_REGISTER_RAX || r > ZYDIS_REGISTER_R15) return kNoReg;
  return static_cast<unsigned>(kByEncoding[r - ZYDIS_REGISTER_RAX]);
}

GprRef gpr(ZydisRegister r) noexcept {
  GprRef g;
  if (r == ZYDIS_REGISTER_NONE) return g;
  const ZydisRegister full = ZydisRegisterGetLargestEnclosing(ZYDIS_MACHINE_MODE_LONG_64, r);
  g.reg = reg_of_64(full);
  g.bits = ZydisRegisterGetWidth(ZYDIS_MACHINE_MODE_LONG_64, r);
  g.high = r == ZYDIS_REGISTER_AH || r == ZYDIS_REGISTER_BH || r == ZYDIS_REGISTER_CH || r == ZYDIS_REGISTER_DH;
  return g;
}

int xmm_of(ZydisRegister r) noexcept {
  if (r >= ZYDIS_REGISTER_XMM0 && r <= ZYDIS_REGISTER_XMM15) return static_cast<int>(r - ZYDIS_REGISTER_XMM0);
  return -1;
}

std::uint64_t mask_of(unsigned bits) noexcept { return bits >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << bits) - 1; }

std::uint64_t read_gpr(const ucontext_t& uc, const GprRef& g) noexcept {
  const std::uint64_t v = arch::X86_64::reg(uc, g.reg);
  return g.high ? (v >> 8) & 0xff : v & mask_of(g.bits);
}

void write_gpr(ucontext_t& uc, const GprRef& g, std::uint64_t value) noexcept {
  std::uint64_t cur = arch::X86_64::reg(uc, g.reg), next;
  if (g.high) next = (cur & ~std::uint64_t{0xff00}) | ((value & 0xff) << 8);
  else if (g.bits == 64) next = value;
  else if (g.bits == 32) next = value & 0xffffffffu;  // 32-bit writes zero the upper half
  else next = (cur & ~mask_of(g.bits)) | (value & mask_of(g.bits));
  arch::X86_64::set_reg(uc, g.reg, next);
}

std::uint8_t* xmm_bytes(ucontext_t& uc, int i) noexcept {
  return reinterpret_cast<std::uint8_t*>(&uc.uc_mcontext.fpregs->_xmm[i]);
}

ZyanStatus decode_status(const std::uint8_t* bytes, std::size_t len, Decoded* d) noexcept {
  ZydisDecoder decoder;
  const ZyanStatus init = ZydisDecoderInit(&decoder, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
  if (!ZYAN_SUCCESS(init)) return init;
  return ZydisDecoderDecodeFull(&decoder, bytes, len, &d->insn, d->ops);
}

bool decode_raw(const std::uint8_t* bytes, std::size_t len, Decoded* d) noexcept {
  return ZYAN_SUCCESS(decode_status(bytes, len, d));
}

// The explicit memory operand, or null.
const ZydisDecodedOperand* memory_operand(const Decoded& d, int* which) noexcept {
  for (int i = 0; i < d.insn.operand_count_visible; ++i) {
    if (d.ops[i].type == ZYDIS_OPERAND_TYPE_MEMORY && d.ops[i].mem.type == ZYDIS_MEMOP_TYPE_MEM) {
      if (which != nullptr) *which = i;
      return &d.ops[i];
    }
  }
  return nullptr;
}

void fill(const Decoded& d, Instruction* out) noexcept {
  *out = Instruction{};
  out->length = d.insn.length;
  out->mnemonic = ZydisMnemonicGetString(d.insn.mnemonic);
  if (out->mnemonic == nullptr) out->mnemonic = "?";
  out->operand_width = d.insn.operand_width;
  out->lock = (d.insn.attributes & ZYDIS_ATTRIB_HAS_LOCK) != 0;
  if (const ZydisDecodedOperand* m = memory_operand(d, nullptr); m != nullptr) {
    out->has_memory = true;
    out->memory.segment = m->mem.segment == ZYDIS_REGISTER_FS ? 100u : m->mem.segment == ZYDIS_REGISTER_GS ? 101u : kNoReg;
    out->memory.base = reg_of_64(m->mem.base);
    out->memory.index = m->mem.index == ZYDIS_REGISTER_NONE ? kNoReg : reg_of_64(m->mem.index);
    out->memory.scale = m->mem.index == ZYDIS_REGISTER_NONE ? 0 : m->mem.scale;
    out->memory.displacement = m->mem.disp.has_displacement ? m->mem.disp.value : 0;
    out->memory.size = m->size / 8;
    out->memory.read = (m->actions & ZYDIS_OPERAND_ACTION_MASK_READ) != 0;
    out->memory.write = (m->actions & ZYDIS_OPERAND_ACTION_MASK_WRITE) != 0;
  }
}

std::uintptr_t effective_address(const ucontext_t& uc, const Instruction& in) noexcept {
  std::uintptr_t a = static_cast<std::uintptr_t>(in.memory.displacement);
  if (in.memory.base == kRip) a += arch::X86_64::pc(uc) + in.length;
  else if (in.memory.base != kNoReg) a += arch::X86_64::reg(uc, in.memory.base);
  if (in.memory.index != kNoReg) a += arch::X86_64::reg(uc, in.memory.index) * in.memory.scale;
  return a;
}

// Copies the instruction bytes at `pc`. A data fault means the CPU has fetched the whole instruction, so
// its bytes are mapped: read them directly up to the end of the PC's page, and into the next page only
// if the decoder needs more (the instruction straddles the boundary). Otherwise (an instruction-fetch
// fault, or a context not from a fault) read through process_vm_readv, which fails instead of faulting.
long fetch(const FaultContext& ctx, std::uint8_t* bytes, std::size_t cap, bool whole) noexcept {
  const std::uintptr_t pc = ctx.pc();
  const bool fetched = ctx.signal() != 0 && (ctx.access() == Access::read || ctx.access() == Access::write);
  if (!fetched) return os::raw_read_own_memory(bytes, reinterpret_cast<const void*>(pc), cap);
  std::size_t n = 4096 - (pc & 4095);
  if (whole || n > cap) n = cap;
  std::memcpy(bytes, reinterpret_cast<const void*>(pc), n);
  return static_cast<long>(n);
}


// --- the CPU's own ALU --------------------------------------------------------------------------------

enum class Alu { add, sub, and_, or_, xor_ };

// Runs `op` on (a, b) at `bits` width on the CPU; returns the result, stores RFLAGS in *flags. The
// stack pointer is moved below the red zone around pushfq.
#define FL_ALU(INSN, T)                                                                            \
  {                                                                                                \
    T r = static_cast<T>(a);                                                                       \
    std::uint64_t f;                                                                               \
    asm volatile(INSN " %2, %0\n\tlea -128(%%rsp), %%rsp\n\tpushfq\n\tpopq %1\n\tlea 128(%%rsp), %%rsp" \
                 : "+r"(r), "=r"(f)                                                                \
                 : "r"(static_cast<T>(b))                                                          \
                 : "cc", "memory");                                                                \
    *flags = f;                                                                                    \
    return static_cast<std::uint64_t>(r);                                                          \
  }
#define FL_ALU_WIDTHS(MN)                             \
  switch (bits) {                                     \
    case 8: FL_ALU(MN "b", std::uint8_t)              \
    case 16: FL_ALU(MN "w", std::uint16_t)            \
    case 32: FL_ALU(MN "l", std::uint32_t)            \
    default: FL_ALU(MN "q", std::uint64_t)            \
  }

std::uint64_t alu(Alu op, unsigned bits, std::uint64_t a, std::uint64_t b, std::uint64_t* flags) noexcept {
  switch (op) {
    case Alu::add: FL_ALU_WIDTHS("add")
    case Alu::sub: FL_ALU_WIDTHS("sub")
    case Alu::and_: FL_ALU_WIDTHS("and")
    case Alu::or_: FL_ALU_WIDTHS("or")
    case Alu::xor_: FL_ALU_WIDTHS("xor")
  }
  return 0;
}
#undef FL_ALU_WIDTHS
#undef FL_ALU

std::uint64_t sign_extend(std::uint64_t v, unsigned from_bits) noexcept {
  if (from_bits >= 64) return v;
  const std::uint64_t sign = std::uint64_t{1} << (from_bits - 1);
  v &= mask_of(from_bits);
  return (v ^ sign) - sign;
}

bool mem_read(const MemoryAccessor& m, std::uintptr_t a, void* buf, std::size_t n) noexcept {
  return m.read != nullptr && m.read(a, buf, n, m.data);
}
bool mem_write(const MemoryAccessor& m, std::uintptr_t a, const void* buf, std::size_t n) noexcept {
  return m.write != nullptr && m.write(a, buf, n, m.data);
}

// The value of a register or immediate source operand, at the operand's width.
bool source_value(const ucontext_t& uc, const ZydisDecodedOperand& op, unsigned bits, std::uint64_t* out) noexcept {
  if (op.type == ZYDIS_OPERAND_TYPE_IMMEDIATE) {
    *out = op.imm.value.u & mask_of(bits);  // Zydis has already sign-extended it to the operand size
    return true;
  }
  if (op.type == ZYDIS_OPERAND_TYPE_REGISTER) {
    const GprRef g = gpr(op.reg.value);
    if (g.reg == kNoReg || g.reg == kRip) return false;
    *out = read_gpr(uc, g);
    return true;
  }
  return false;
}


EmulateStatus check_emulable(const Decoded& d, const Instruction& in) noexcept {
  if (d.insn.encoding != ZYDIS_INSTRUCTION_ENCODING_LEGACY) return EmulateStatus::vex;
  if (in.lock || d.insn.mnemonic == ZYDIS_MNEMONIC_XCHG) return EmulateStatus::not_atomic;
  if (!in.has_memory) return EmulateStatus::no_memory_operand;
  if (in.memory.segment != kNoReg) return EmulateStatus::segment;
  return EmulateStatus::ok;
}

}  // namespace

namespace arch::emulation {

EmulateStatus decode_at(const FaultContext& ctx, Decoded* d, Instruction* out) noexcept {
  std::uint8_t bytes[ZYDIS_MAX_INSTRUCTION_LENGTH];
  long n = fetch(ctx, bytes, sizeof bytes, false);
  if (n <= 0) return EmulateStatus::unreadable_pc;
  if (const ZyanStatus st = decode_status(bytes, static_cast<std::size_t>(n), d); !ZYAN_SUCCESS(st)) {
    // Only a truncated instruction is worth a second read (never past what the CPU itself fetched).
    if (static_cast<std::size_t>(n) == sizeof bytes || st != ZYDIS_STATUS_NO_MORE_DATA) return EmulateStatus::undecodable;
    n = fetch(ctx, bytes, sizeof bytes, true);  // straddles a page boundary: the next page is mapped
    if (n <= 0 || !decode_raw(bytes, static_cast<std::size_t>(n), d)) return EmulateStatus::undecodable;
  }
  fill(*d, out);
  if (out->has_memory) out->memory.address = effective_address(*ctx.ucontext(), *out);
  return EmulateStatus::ok;
}

EmulateStatus run(FaultContext& ctx, const Decoded& d, const Instruction& in,
                              const MemoryAccessor& mem) noexcept {
  ucontext_t& uc = *ctx.ucontext();
  const ZydisMnemonic mn = d.insn.mnemonic;
  int mi = -1;
  memory_operand(d, &mi);
  const ZydisDecodedOperand& other = d.ops[mi == 0 ? 1 : 0];
  const std::uintptr_t ea = in.memory.address;
  const unsigned msize = in.memory.size;
  std::uint64_t flags_out = 0;
  bool set_flags = false;

  switch (mn) {
    case ZYDIS_MNEMONIC_MOV: {
      if (d.insn.operand_count_visible != 2 || msize == 0 || msize > 8) return EmulateStatus::unsupported;
      if (mi == 0) {  // store
        std::uint64_t v;
        if (!source_value(uc, other, msize * 8, &v)) return EmulateStatus::unsupported;
        if (!mem_write(mem, ea, &v, msize)) return EmulateStatus::access_failed;
      } else {  // load
        const GprRef g = gpr(other.reg.value);
        if (other.type != ZYDIS_OPERAND_TYPE_REGISTER || g.reg == kNoReg || g.reg == kRip) {
          return EmulateStatus::unsupported;  // mov to a segment register and such
        }
        std::uint64_t v = 0;
        if (!mem_read(mem, ea, &v, msize)) return EmulateStatus::access_failed;
        write_gpr(uc, g, v);
      }
      break;
    }
    case ZYDIS_MNEMONIC_MOVZX:
    case ZYDIS_MNEMONIC_MOVSX:
    case ZYDIS_MNEMONIC_MOVSXD: {
      const GprRef g = gpr(d.ops[0].reg.value);
      if (mi != 1 || g.reg == kNoReg || msize == 0 || msize > 4) return EmulateStatus::unsupported;
      std::uint64_t v = 0;
      if (!mem_read(mem, ea, &v, msize)) return EmulateStatus::access_failed;
      if (mn != ZYDIS_MNEMONIC_MOVZX) v = sign_extend(v, msize * 8);
      write_gpr(uc, g, v);
      break;
    }
    case ZYDIS_MNEMONIC_MOVDQU:
    case ZYDIS_MNEMONIC_MOVDQA:
    case ZYDIS_MNEMONIC_MOVUPS:
    case ZYDIS_MNEMONIC_MOVAPS:
    case ZYDIS_MNEMONIC_MOVUPD:
    case ZYDIS_MNEMONIC_MOVAPD:
    case ZYDIS_MNEMONIC_MOVD:
    case ZYDIS_MNEMONIC_MOVQ: {
      const int x = xmm_of(other.reg.value);
      if (other.type != ZYDIS_OPERAND_TYPE_REGISTER || x < 0 || uc.uc_mcontext.fpregs == nullptr) {
        return EmulateStatus::unsupported;  // MMX forms, or a general register (MOVQ r64, xmm has no memory)
      }
      if (msize != 4 && msize != 8 && msize != 16) return EmulateStatus::unsupported;
      std::uint8_t* reg = xmm_bytes(uc, x);
      if (mi == 0) {  // store the low msize bytes
        if (!mem_write(mem, ea, reg, msize)) return EmulateStatus::access_failed;
      } else {  // load; MOVD/MOVQ zero the rest of the register
        std::uint8_t buf[16] = {};
        if (!mem_read(mem, ea, buf, msize)) return EmulateStatus::access_failed;
        std::memcpy(reg, buf, 16);
      }
      break;
    }
    case ZYDIS_MNEMONIC_CMP:
    case ZYDIS_MNEMONIC_TEST:
    case ZYDIS_MNEMONIC_ADD:
    case ZYDIS_MNEMONIC_SUB:
    case ZYDIS_MNEMONIC_AND:
    case ZYDIS_MNEMONIC_OR:
    case ZYDIS_MNEMONIC_XOR: {
      if (d.insn.operand_count_visible != 2 || msize == 0 || msize > 8) return EmulateStatus::unsupported;
      const unsigned bits = msize * 8;
      std::uint64_t mval = 0, oval;
      if (!source_value(uc, other, bits, &oval)) return EmulateStatus::unsupported;
      if (!mem_read(mem, ea, &mval, msize)) return EmulateStatus::access_failed;
      const std::uint64_t a = mi == 0 ? mval : oval, b = mi == 0 ? oval : mval;  // a = destination operand
      const Alu op = mn == ZYDIS_MNEMONIC_ADD                                 ? Alu::add
                     : mn == ZYDIS_MNEMONIC_SUB || mn == ZYDIS_MNEMONIC_CMP   ? Alu::sub
                     : mn == ZYDIS_MNEMONIC_AND || mn == ZYDIS_MNEMONIC_TEST ? Alu::and_
                     : mn == ZYDIS_MNEMONIC_OR                                ? Alu::or_
                                                                              : Alu::xor_;
      const std::uint64_t r = alu(op, bits, a, b, &flags_out);
      set_flags = true;
      if (mn != ZYDIS_MNEMONIC_CMP && mn != ZYDIS_MNEMONIC_TEST) {
        if (mi == 0) {
          if (!mem_write(mem, ea, &r, msize)) return EmulateStatus::access_failed;
        } else {
          write_gpr(uc, gpr(other.reg.value), r);
        }
      }
      break;
    }
    default:
      return EmulateStatus::unsupported;
  }
  if (set_flags) {
    const std::uint64_t f = arch::X86_64::flags(uc);
    uc.uc_mcontext.gregs[REG_EFL] = static_cast<greg_t>((f & ~kArithFlags) | (flags_out & kArithFlags));
  }
  arch::X86_64::set_pc(uc, arch::X86_64::pc(uc) + in.length);
  return EmulateStatus::ok;
}

EmulateStatus decode_bytes(const std::uint8_t* bytes, std::size_t len, Decoded* d, Instruction* out) noexcept {
  if (!decode_raw(bytes, len, d)) return EmulateStatus::undecodable;
  fill(*d, out);
  return EmulateStatus::ok;
}

EmulateStatus check(const Decoded& d, const Instruction& in) noexcept { return check_emulable(d, in); }

// The base register, else an index register with scale 1; none for RIP-relative operands or the stack
// pointer. With both a base and an index, the index must not point into moved space.
void pointer_registers(const Decoded&, const Instruction& in, unsigned* reg, unsigned* other) noexcept {
  *reg = kNoReg;
  *other = kNoReg;
  if (in.memory.base == kRip) return;
  if (in.memory.base != kNoReg) {
    *reg = in.memory.base;
    *other = in.memory.index;
  } else if (in.memory.index != kNoReg && in.memory.scale == 1) {
    *reg = in.memory.index;
  }
  if (*reg == static_cast<unsigned>(Reg::rsp)) *reg = kNoReg;
}

}  // namespace arch::emulation

}  // namespace faultline
