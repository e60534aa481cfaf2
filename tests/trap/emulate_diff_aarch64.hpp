// tests/trap/emulate_diff_aarch64.hpp: differential testing of faultline's A64 load/store emulation (the
// aarch64 twin of emulate_diff_x86_64.hpp).
//
// A generator builds a random supported instruction by encoding its fields (every single-register and
// pair form, integer and SIMD&FP, every addressing mode), and random register, flag, SIMD and memory
// contents. The instruction runs twice through tests/trap/run_insn_aarch64.S: natively on a readable
// page pair, then on the same pages made PROT_NONE, where faultline's handler emulates it with the access
// redirected to a copy. Registers, flags, vector registers and memory must match exactly. Under qemu-user
// "natively" means qemu's execution: the test then checks the decoder and the emulation logic against
// qemu's, not against silicon.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "faultline/emulate.hpp"
#include "trap/emulate_pages.hpp"

namespace faultline::test {

struct CpuState {
  std::uint64_t x[31];
  std::uint64_t nzcv;
  std::uint8_t v[32][16];
};
static_assert(offsetof(CpuState, nzcv) == 248 && offsetof(CpuState, v) == 256);

class DiffRunner : public EmulationPages<CpuState> {
 public:
  // Builds a random supported instruction.
  template <RandomFn R>
  bool generate(R& rnd, Case* c) {
    static constexpr unsigned kData[28] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13,
                                           14, 15, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30};
    auto data_reg = [&](bool zr_ok) { return zr_ok && rnd() % 16 == 0 ? 31u : kData[rnd() % 28]; };
    const bool simd = rnd() % 3 == 0;
    const unsigned form = static_cast<unsigned>(rnd() % 6);  // 0 uimm, 1 unscaled, 2 pre, 3 post, 4 reg, 5 pair
    unsigned rt = simd ? static_cast<unsigned>(rnd() % 32) : data_reg(true);
    unsigned rt2 = 0, rm = 0, rn = kData[rnd() % 28];
    std::uint32_t w = 0;
    std::size_t elem = 0, total = 0;
    std::int64_t ea_minus_base = 0;  // effective address - base (0 for post-index)
    const char* what = "";
    for (auto& x : c->init.x) x = rnd();
    c->init.nzcv = (rnd() & 0xF) << 28;
    for (auto& v : c->init.v) {
      for (unsigned b = 0; b < 16; b += 8) {
        const std::uint64_t r = rnd();
        std::memcpy(v + b, &r, 8);
      }
    }
    if (form == 5) {
      unsigned opc, type = static_cast<unsigned>(rnd() % 4);
      bool load = rnd() % 2;
      if (simd) {
        opc = static_cast<unsigned>(rnd() % 3);
        elem = 4u << opc;
      } else {
        const unsigned k = static_cast<unsigned>(rnd() % 3);
        opc = k == 0 ? 0 : k == 1 ? 2 : 1;
        if (opc == 1) {  // LDPSW: loads only, no non-temporal form
          load = true;
          if (type == 0) type = 2;
        }
        elem = opc == 2 ? 8 : 4;
      }
      do rt2 = simd ? static_cast<unsigned>(rnd() % 32) : data_reg(!load);
      while (load && rt2 == rt);
      if (!simd && (type == 1 || type == 3)) {
        while (rn == rt || rn == rt2) rn = kData[rnd() % 28];
      }
      const std::int64_t imm7 = static_cast<std::int64_t>(rnd() % 128) - 64;
      w = (opc << 30) | (0b101u << 27) | ((simd ? 1u : 0u) << 26) | (type << 23) | ((load ? 1u : 0u) << 22) |
          ((static_cast<std::uint32_t>(imm7) & 0x7f) << 15) | (rt2 << 10) | (rn << 5) | rt;
      ea_minus_base = type == 1 ? 0 : imm7 * static_cast<std::int64_t>(elem);
      total = 2 * elem;
      what = load ? "ldp" : "stp";
    } else {
      unsigned size, opc;
      if (simd) {
        const unsigned k = static_cast<unsigned>(rnd() % 5);  // b h s d q
        size = k == 4 ? 0 : k;
        opc = (k == 4 ? 2u : 0u) | static_cast<unsigned>(rnd() % 2);
        elem = k == 4 ? 16 : 1u << size;
      } else {
        static constexpr unsigned kPairs[12][2] = {{0, 0}, {0, 1}, {0, 2}, {0, 3}, {1, 0}, {1, 1},
                                                   {1, 2}, {1, 3}, {2, 0}, {2, 1}, {2, 2}, {3, 0}};
        const unsigned k = static_cast<unsigned>(rnd() % 13);
        size = k == 12 ? 3 : kPairs[k][0];
        opc = k == 12 ? 1 : kPairs[k][1];
        elem = 1u << size;
      }
      const bool load = simd ? (opc & 1) != 0 : opc != 0;
      if (load && !simd && rt == 31 && rnd() % 2) rt = kData[rnd() % 28];
      w = (size << 30) | (0b111u << 27) | ((simd ? 1u : 0u) << 26) | (opc << 22) | (rn << 5) | rt;
      total = elem;
      what = load ? "ldr" : "str";
      if (form == 0) {
        const std::uint64_t imm12 = rnd() % 256;
        w |= (1u << 24) | (static_cast<std::uint32_t>(imm12) << 10);
        ea_minus_base = static_cast<std::int64_t>(imm12 * elem);
      } else if (form <= 3) {
        if (!simd && form != 1) {
          while (rn == rt) rn = kData[rnd() % 28];
          w = (w & ~(31u << 5)) | (rn << 5);
        }
        const std::int64_t imm9 = static_cast<std::int64_t>(rnd() % 512) - 256;
        const unsigned kind = form == 1 ? 0 : form == 2 ? 3 : 1;
        w |= ((static_cast<std::uint32_t>(imm9) & 0x1ff) << 12) | (kind << 10);
        ea_minus_base = kind == 1 ? 0 : imm9;
      } else {
        do rm = rnd() % 8 == 0 ? 31u : kData[rnd() % 28];
        while (rm == rn);
        static constexpr unsigned kOptions[4] = {2, 3, 6, 7};
        const unsigned option = kOptions[rnd() % 4];
        const unsigned s = static_cast<unsigned>(rnd() % 2);
        w |= (1u << 21) | (rm << 16) | (option << 13) | (s << 12) | (2u << 10);
        std::uint64_t off = rm == 31 ? 0 : c->init.x[rm];
        if (option == 2) off = static_cast<std::uint32_t>(off);
        if (option == 6) off = static_cast<std::uint64_t>(static_cast<std::int64_t>(static_cast<std::int32_t>(off)));
        const unsigned shift = s != 0 ? (elem == 16 ? 4 : elem == 8 ? 3 : elem == 4 ? 2 : elem == 2 ? 1 : 0) : 0;
        ea_minus_base = static_cast<std::int64_t>(off << shift);
      }
    }
    std::memcpy(c->code, &w, 4);
    c->len = 4;
    c->offset = static_cast<std::size_t>(rnd() % (2 * page_ - total));
    c->init.x[rn] = reinterpret_cast<std::uintptr_t>(area_) + c->offset - static_cast<std::uint64_t>(ea_minus_base);
    char text[64];
    std::snprintf(text, sizeof text, "%s%s word 0x%08x", what, simd ? " (simd)" : "", w);
    c->text = text;
    return true;
  }

  // Runs the case natively and emulated; returns "" when they agree, else what differs.
  template <RandomFn R>
  std::string run(const Case& c, R& rnd) {
    // The instruction, then `ldr x17, lit; br x17; nop; lit: .quad faultline_test_insn_return`.
    const std::uint32_t tail[3] = {0x58000071u, 0xd61f0220u, 0xd503201fu};
    std::memcpy(code_, c.code, 4);
    std::memcpy(code_ + 4, tail, sizeof tail);
    const auto ret = reinterpret_cast<std::uintptr_t>(faultline_test_insn_return);
    std::memcpy(code_ + 16, &ret, 8);
    __builtin___clear_cache(reinterpret_cast<char*>(code_), reinterpret_cast<char*>(code_ + 24));
    CpuState native = c.init, emulated = c.init;
    if (std::string why = run_both(rnd, &native, &emulated); !why.empty()) return why;
    for (unsigned r = 0; r < 31; ++r) {
      if (r == 16 || r == 17 || r == 18) continue;  // the harness's scratch registers, the platform register
      if (native.x[r] != emulated.x[r]) {
        return "x" + std::to_string(r) + ": native " + hex(native.x[r]) + ", emulated " + hex(emulated.x[r]);
      }
    }
    if (native.nzcv != emulated.nzcv) return "nzcv: native " + hex(native.nzcv) + ", emulated " + hex(emulated.nzcv);
    if (std::memcmp(native.v, emulated.v, sizeof native.v) != 0) return "vector registers differ";
    if (!memory_matches()) return "memory differs";
    return "";
  }

};

}  // namespace faultline::test
