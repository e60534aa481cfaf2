// tests/trap/emulate_diff_x86_64.hpp: differential testing of faultline's instruction emulation.
//
// A generator builds a random supported instruction (mnemonic, widths, registers, addressing mode,
// immediate) with Zydis's encoder, and random register, flag, SIMD and memory contents. The instruction
// runs twice through tests/run_insn_x86_64.S: natively on a readable page, then on the same page made
// PROT_NONE, where faultline's handler emulates it with the access redirected to a copy of the page.
// Registers, flags, SIMD registers and memory must match exactly. Shared by the GoogleTest suite and the
// libFuzzer target (which supplies the random numbers).
#pragma once

#include <Zydis/Zydis.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "faultline/emulate.hpp"
#include "trap/emulate_pages.hpp"

namespace faultline::test {

struct CpuState {
  std::uint64_t gpr[16];  // Reg order; gpr[7] (rsp) unused
  std::uint64_t flags;
  std::uint64_t pad;
  std::uint8_t xmm[16][16];
};
static_assert(offsetof(CpuState, flags) == 128 && offsetof(CpuState, xmm) == 144);

// Hardware register number (ModRM order) to faultline's Reg order.
inline constexpr unsigned kHwToReg[16] = {0, 2, 3, 1, 7, 6, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15};

inline ZydisRegister gpr_reg(unsigned hw, unsigned bits) {
  static constexpr ZydisRegister r64[16] = {
      ZYDIS_REGISTER_RAX, ZYDIS_REGISTER_RCX, ZYDIS_REGISTER_RDX, ZYDIS_REGISTER_RBX, ZYDIS_REGISTER_RSP,
      ZYDIS_REGISTER_RBP, ZYDIS_REGISTER_RSI, ZYDIS_REGISTER_RDI, ZYDIS_REGISTER_R8,  ZYDIS_REGISTER_R9,
      ZYDIS_REGISTER_R10, ZYDIS_REGISTER_R11, ZYDIS_REGISTER_R12, ZYDIS_REGISTER_R13, ZYDIS_REGISTER_R14,
      ZYDIS_REGISTER_R15};
  static constexpr ZydisRegister r32[16] = {
      ZYDIS_REGISTER_EAX,  ZYDIS_REGISTER_ECX,  ZYDIS_REGISTER_EDX,  ZYDIS_REGISTER_EBX,
      ZYDIS_REGISTER_ESP,  ZYDIS_REGISTER_EBP,  ZYDIS_REGISTER_ESI,  ZYDIS_REGISTER_EDI,
      ZYDIS_REGISTER_R8D,  ZYDIS_REGISTER_R9D,  ZYDIS_REGISTER_R10D, ZYDIS_REGISTER_R11D,
      ZYDIS_REGISTER_R12D, ZYDIS_REGISTER_R13D, ZYDIS_REGISTER_R14D, ZYDIS_REGISTER_R15D};
  static constexpr ZydisRegister r16[16] = {
      ZYDIS_REGISTER_AX,   ZYDIS_REGISTER_CX,   ZYDIS_REGISTER_DX,   ZYDIS_REGISTER_BX,
      ZYDIS_REGISTER_SP,   ZYDIS_REGISTER_BP,   ZYDIS_REGISTER_SI,   ZYDIS_REGISTER_DI,
      ZYDIS_REGISTER_R8W,  ZYDIS_REGISTER_R9W,  ZYDIS_REGISTER_R10W, ZYDIS_REGISTER_R11W,
      ZYDIS_REGISTER_R12W, ZYDIS_REGISTER_R13W, ZYDIS_REGISTER_R14W, ZYDIS_REGISTER_R15W};
  static constexpr ZydisRegister r8[16] = {
      ZYDIS_REGISTER_AL,   ZYDIS_REGISTER_CL,   ZYDIS_REGISTER_DL,   ZYDIS_REGISTER_BL,
      ZYDIS_REGISTER_SPL,  ZYDIS_REGISTER_BPL,  ZYDIS_REGISTER_SIL,  ZYDIS_REGISTER_DIL,
      ZYDIS_REGISTER_R8B,  ZYDIS_REGISTER_R9B,  ZYDIS_REGISTER_R10B, ZYDIS_REGISTER_R11B,
      ZYDIS_REGISTER_R12B, ZYDIS_REGISTER_R13B, ZYDIS_REGISTER_R14B, ZYDIS_REGISTER_R15B};
  switch (bits) {
    case 64: return r64[hw];
    case 32: return r32[hw];
    case 16: return r16[hw];
    default: return r8[hw];
  }
}

class DiffRunner : public EmulationPages<CpuState> {
 public:
  // Builds a random supported instruction. Returns false when the encoder refused the combination.
  template <RandomFn R>
  bool generate(R& rnd, Case* c) {
    ZydisEncoderRequest req;
    std::memset(&req, 0, sizeof req);
    req.machine_mode = ZYDIS_MACHINE_MODE_LONG_64;
    static constexpr unsigned kWidths[4] = {8, 16, 32, 64};
    const unsigned kind = static_cast<unsigned>(rnd() % 12);
    unsigned width = kWidths[rnd() % 4];
    unsigned mem_bits = width;
    bool aligned16 = false;
    auto any_gpr = [&] {
      unsigned hw;
      do hw = static_cast<unsigned>(rnd() % 16);
      while (hw == 4);  // never rsp
      return hw;
    };
    const unsigned base = any_gpr();
    unsigned index = 16;  // none
    if (rnd() % 2) {
      do index = any_gpr();
      while (index == base);
    }
    const unsigned scale = 1u << (rnd() % 4);
    const std::int32_t disp = static_cast<std::int32_t>(static_cast<std::int64_t>(rnd() % 512) - 256);
    ZydisEncoderOperand mem{};
    mem.type = ZYDIS_OPERAND_TYPE_MEMORY;
    mem.mem.base = gpr_reg(base, 64);
    mem.mem.index = index < 16 ? gpr_reg(index, 64) : ZYDIS_REGISTER_NONE;
    mem.mem.scale = static_cast<ZyanU8>(index < 16 ? scale : 0);
    mem.mem.displacement = disp;
    ZydisEncoderOperand reg{};
    reg.type = ZYDIS_OPERAND_TYPE_REGISTER;
    auto pick_reg = [&](unsigned bits) {
      if (bits == 8 && rnd() % 4 == 0) {
        static constexpr ZydisRegister high[4] = {ZYDIS_REGISTER_AH, ZYDIS_REGISTER_CH, ZYDIS_REGISTER_DH,
                                                  ZYDIS_REGISTER_BH};
        return high[rnd() % 4];
      }
      return gpr_reg(any_gpr(), bits);
    };
    ZydisEncoderOperand imm{};
    imm.type = ZYDIS_OPERAND_TYPE_IMMEDIATE;
    imm.imm.s = static_cast<std::int64_t>(static_cast<std::int32_t>(rnd()));
    if (width == 8) imm.imm.s = static_cast<std::int8_t>(imm.imm.s);
    if (width == 16) imm.imm.s = static_cast<std::int16_t>(imm.imm.s);
    static constexpr ZydisMnemonic kAlu[7] = {ZYDIS_MNEMONIC_ADD, ZYDIS_MNEMONIC_SUB, ZYDIS_MNEMONIC_AND,
                                              ZYDIS_MNEMONIC_OR,  ZYDIS_MNEMONIC_XOR, ZYDIS_MNEMONIC_CMP,
                                              ZYDIS_MNEMONIC_TEST};
    switch (kind) {
      case 0:  // mov r, m
        req.mnemonic = ZYDIS_MNEMONIC_MOV;
        reg.reg.value = pick_reg(width);
        set(req, reg, mem);
        break;
      case 1:  // mov m, r
        req.mnemonic = ZYDIS_MNEMONIC_MOV;
        reg.reg.value = pick_reg(width);
        set(req, mem, reg);
        break;
      case 2:  // mov m, imm
        req.mnemonic = ZYDIS_MNEMONIC_MOV;
        set(req, mem, imm);
        break;
      case 3:  // movzx / movsx r, m8|m16 ; movsxd r64, m32
      {
        const unsigned k = static_cast<unsigned>(rnd() % 3);
        if (k == 2) {
          req.mnemonic = ZYDIS_MNEMONIC_MOVSXD;
          width = 64;
          mem_bits = 32;
        } else {
          req.mnemonic = k == 0 ? ZYDIS_MNEMONIC_MOVZX : ZYDIS_MNEMONIC_MOVSX;
          mem_bits = rnd() % 2 ? 8 : 16;
          width = mem_bits == 8 ? kWidths[1 + rnd() % 3] : kWidths[2 + rnd() % 2];
        }
        reg.reg.value = gpr_reg(any_gpr(), width);
        set(req, reg, mem);
        break;
      }
      case 4:
      case 5:  // alu r, m (test has no r, m form: use m, r)
      {
        req.mnemonic = kAlu[rnd() % 7];
        reg.reg.value = pick_reg(width);
        if (kind == 4 && req.mnemonic != ZYDIS_MNEMONIC_TEST) set(req, reg, mem);
        else set(req, mem, reg);
        break;
      }
      case 6:
      case 7:  // alu m, imm
        req.mnemonic = kAlu[rnd() % 7];
        if (width == 64 && req.mnemonic == ZYDIS_MNEMONIC_TEST) imm.imm.s = static_cast<std::int32_t>(imm.imm.s);
        set(req, mem, imm);
        break;
      case 8:
      case 9:  // 16-byte SSE load/store
      {
        static constexpr ZydisMnemonic kSse[6] = {ZYDIS_MNEMONIC_MOVDQU, ZYDIS_MNEMONIC_MOVUPS,
                                                  ZYDIS_MNEMONIC_MOVUPD, ZYDIS_MNEMONIC_MOVDQA,
                                                  ZYDIS_MNEMONIC_MOVAPS, ZYDIS_MNEMONIC_MOVAPD};
        const unsigned k = static_cast<unsigned>(rnd() % 6);
        req.mnemonic = kSse[k];
        aligned16 = k >= 3;
        width = mem_bits = 128;
        reg.reg.value = static_cast<ZydisRegister>(ZYDIS_REGISTER_XMM0 + rnd() % 16);
        if (kind == 8) set(req, reg, mem);
        else set(req, mem, reg);
        break;
      }
      default:  // movd / movq between xmm and memory
      {
        req.mnemonic = rnd() % 2 ? ZYDIS_MNEMONIC_MOVD : ZYDIS_MNEMONIC_MOVQ;
        width = mem_bits = req.mnemonic == ZYDIS_MNEMONIC_MOVD ? 32 : 64;
        reg.reg.value = static_cast<ZydisRegister>(ZYDIS_REGISTER_XMM0 + rnd() % 16);
        if (kind == 10) set(req, reg, mem);
        else set(req, mem, reg);
        break;
      }
    }
    for (unsigned i = 0; i < req.operand_count; ++i) {
      if (req.operands[i].type == ZYDIS_OPERAND_TYPE_MEMORY) req.operands[i].mem.size = static_cast<ZyanU16>(mem_bits / 8);
    }
    ZyanUSize len = sizeof c->code;
    if (!ZYAN_SUCCESS(ZydisEncoderEncodeInstruction(&req, c->code, &len))) return false;
    c->len = len;
    // Registers, flags, SIMD: random. The effective address lands in the page pair with room.
    for (auto& g : c->init.gpr) g = rnd();
    c->init.flags = 0x202 | (rnd() & 0x8D5);  // IF, the reserved bit, random arithmetic flags
    for (auto& x : c->init.xmm) {
      for (unsigned b = 0; b < 16; b += 8) {
        const std::uint64_t v = rnd();
        std::memcpy(x + b, &v, 8);
      }
    }
    const std::size_t size = mem_bits / 8;
    c->offset = static_cast<std::size_t>(rnd() % (2 * page_ - size));
    if (aligned16) c->offset &= ~std::size_t{15};
    const std::uint64_t index_part = index < 16 ? c->init.gpr[kHwToReg[index]] * scale : 0;
    c->init.gpr[kHwToReg[base]] = reinterpret_cast<std::uintptr_t>(area_) + c->offset - static_cast<std::uint64_t>(static_cast<std::int64_t>(disp)) - index_part;
    char text[96];
    ZydisDisassembledInstruction dis;
    if (ZYAN_SUCCESS(ZydisDisassembleIntel(ZYDIS_MACHINE_MODE_LONG_64, 0, c->code, c->len, &dis))) {
      std::snprintf(text, sizeof text, "%s", dis.text);
    } else {
      std::snprintf(text, sizeof text, "(undisassemblable)");
    }
    c->text = text;
    return true;
  }

  // Runs the case natively and emulated; returns "" when they agree, else what differs.
  template <RandomFn R>
  std::string run(const Case& c, R& rnd) {
    // The instruction, then `jmp *0(%rip)` and the return address.
    std::memcpy(code_, c.code, c.len);
    std::uint8_t* j = code_ + c.len;
    *j++ = 0xFF;
    *j++ = 0x25;
    std::memset(j, 0, 4);
    j += 4;
    const auto ret = reinterpret_cast<std::uintptr_t>(faultline_test_insn_return);
    std::memcpy(j, &ret, 8);
    CpuState native = c.init, emulated = c.init;
    if (std::string why = run_both(rnd, &native, &emulated); !why.empty()) return why;
    for (unsigned r = 0; r < 16; ++r) {
      if (r != 7 && native.gpr[r] != emulated.gpr[r]) {
        return std::string("register ") + reg_name(static_cast<Reg>(r)) + ": native " + hex(native.gpr[r]) +
               ", emulated " + hex(emulated.gpr[r]);
      }
    }
    if ((native.flags & 0x8D5) != (emulated.flags & 0x8D5)) {
      return "flags: native " + hex(native.flags) + ", emulated " + hex(emulated.flags);
    }
    if (std::memcmp(native.xmm, emulated.xmm, sizeof native.xmm) != 0) return "xmm registers differ";
    if (!memory_matches()) return "memory differs";
    return "";
  }

 private:
  static void set(ZydisEncoderRequest& req, const ZydisEncoderOperand& a, const ZydisEncoderOperand& b) {
    req.operand_count = 2;
    req.operands[0] = a;
    req.operands[1] = b;
  }
};

}  // namespace faultline::test
