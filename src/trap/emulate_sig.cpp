// trap/emulate_sig.cpp: the public emulation API (faultline/emulate.hpp) over the architecture's
// decoder and emulator (arch/emulate_isa.hpp) (signal path: no allocation, no locks).
#include <cstring>

#include "arch/emulate_isa.hpp"
#include "faultline/emulate.hpp"

namespace faultline {

namespace isa = arch::emulation;

namespace {

// The accessor of emulate(ctx, target): adds (target - effective address), its data, to every address.
bool direct_read(std::uintptr_t a, void* buf, std::size_t n, void* data) {
  std::memcpy(buf, reinterpret_cast<const void*>(a + reinterpret_cast<std::uintptr_t>(data)), n);
  return true;
}
bool direct_write(std::uintptr_t a, const void* buf, std::size_t n, void* data) {
  std::memcpy(reinterpret_cast<void*>(a + reinterpret_cast<std::uintptr_t>(data)), buf, n);
  return true;
}

}  // namespace

const char* emulate_status_name(EmulateStatus s) noexcept {
  switch (s) {
    case EmulateStatus::ok: return "ok";
    case EmulateStatus::unreadable_pc: return "unreadable_pc";
    case EmulateStatus::undecodable: return "undecodable";
    case EmulateStatus::no_memory_operand: return "no_memory_operand";
    case EmulateStatus::unsupported: return "unsupported";
    case EmulateStatus::not_atomic: return "not_atomic";
    case EmulateStatus::vex: return "vex";
    case EmulateStatus::segment: return "segment";
    case EmulateStatus::access_failed: return "access_failed";
    case EmulateStatus::not_a_pointer: return "not_a_pointer";
    case EmulateStatus::not_forwarded: return "not_forwarded";
  }
  return "?";
}

EmulateStatus decode_bytes(const std::uint8_t* bytes, std::size_t len, Instruction* out) noexcept {
  if (bytes == nullptr || out == nullptr) return EmulateStatus::undecodable;
  isa::Decoded d;
  return isa::decode_bytes(bytes, len, &d, out);
}

EmulateStatus decode(const FaultContext& ctx, Instruction* out) noexcept {
  if (ctx.ucontext() == nullptr || out == nullptr) return EmulateStatus::unreadable_pc;
  isa::Decoded d;
  return isa::decode_at(ctx, &d, out);
}

EmulateStatus emulate(FaultContext& ctx, const MemoryAccessor& mem) noexcept {
  if (ctx.ucontext() == nullptr) return EmulateStatus::unreadable_pc;
  isa::Decoded d;
  Instruction in;
  if (EmulateStatus s = isa::decode_at(ctx, &d, &in); s != EmulateStatus::ok) return s;
  if (EmulateStatus s = isa::check(d, in); s != EmulateStatus::ok) return s;
  return isa::run(ctx, d, in, mem);
}

EmulateStatus emulate(FaultContext& ctx, std::uintptr_t target) noexcept {
  if (ctx.ucontext() == nullptr) return EmulateStatus::unreadable_pc;
  isa::Decoded d;
  Instruction in;
  if (EmulateStatus s = isa::decode_at(ctx, &d, &in); s != EmulateStatus::ok) return s;
  if (EmulateStatus s = isa::check(d, in); s != EmulateStatus::ok) return s;
  const MemoryAccessor direct{direct_read, direct_write, reinterpret_cast<void*>(target - in.memory.address)};
  return isa::run(ctx, d, in, direct);
}

EmulateStatus heal(FaultContext& ctx, ForwardFn forward, void* data) noexcept {
  if (ctx.ucontext() == nullptr || forward == nullptr) return EmulateStatus::unreadable_pc;
  isa::Decoded d;
  Instruction in;
  if (EmulateStatus s = isa::decode_at(ctx, &d, &in); s != EmulateStatus::ok) return s;
  if (!in.has_memory) return EmulateStatus::no_memory_operand;
  if (in.memory.segment != kNoReg) return EmulateStatus::segment;
  const std::uintptr_t fault = ctx.address() != 0 ? ctx.address() : in.memory.address;
  const std::uintptr_t moved = forward(fault, data);
  if (moved == 0) return EmulateStatus::not_forwarded;
  const std::uintptr_t delta = moved - fault;
  unsigned reg = kNoReg, other = kNoReg;
  isa::pointer_registers(d, in, &reg, &other);
  if (reg == kNoReg) return EmulateStatus::not_a_pointer;
  // Both registers inside moved space: which one holds the object pointer cannot be told.
  if (other != kNoReg && forward(ctx.reg(static_cast<Reg>(other)), data) != 0) return EmulateStatus::not_a_pointer;
  // The register must point into the same moved object: it forwards by the same distance.
  const std::uintptr_t value = ctx.reg(static_cast<Reg>(reg));
  const std::uintptr_t value_moved = forward(value, data);
  if (value_moved == 0 || value_moved - value != delta) return EmulateStatus::not_a_pointer;
  ctx.set_reg(static_cast<Reg>(reg), value + delta);
  return EmulateStatus::ok;
}

}  // namespace faultline
