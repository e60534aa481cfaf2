// trap/context_sig.cpp: FaultContext over the architecture layer (signal path).
#include "faultline/context.hpp"

#include "arch/arch.hpp"

namespace faultline {

using A = arch::Current;

const char* access_name(Access a) noexcept {
  switch (a) {
    case Access::read: return "read";
    case Access::write: return "write";
    case Access::execute: return "execute";
    case Access::unknown: break;
  }
  return "unknown";
}

const char* FaultContext::code_name() const noexcept {
  return info_ != nullptr ? signal_code_name(sig_, info_->si_code) : "none";
}
const char* FaultContext::signal_name() const noexcept { return faultline::signal_name(sig_); }

Access FaultContext::access() const noexcept {
  return info_ != nullptr && info_->si_code > 0 ? A::access(*info_, *uc_) : Access::unknown;
}
std::uint64_t FaultContext::hw_error_code() const noexcept { return A::hw_error_code(*uc_); }
bool FaultContext::hw_present() const noexcept { return A::hw_present(*uc_); }
std::uintptr_t FaultContext::pc() const noexcept { return A::pc(*uc_); }
std::uintptr_t FaultContext::sp() const noexcept { return A::sp(*uc_); }
std::uintptr_t FaultContext::fp() const noexcept { return A::fp(*uc_); }
std::uint64_t FaultContext::flags() const noexcept { return A::flags(*uc_); }
std::uint64_t FaultContext::reg(Reg r) const noexcept { return A::reg(*uc_, static_cast<unsigned>(r)); }
void FaultContext::set_pc(std::uintptr_t pc) noexcept { A::set_pc(*uc_, pc); }
void FaultContext::set_sp(std::uintptr_t sp) noexcept { A::set_sp(*uc_, sp); }
bool FaultContext::set_reg(Reg r, std::uint64_t value) noexcept {
  return A::set_reg(*uc_, static_cast<unsigned>(r), value);
}
bool FaultContext::vector_reg(unsigned i, std::uint8_t out[16]) const noexcept {
  return A::vector_reg(*uc_, i, out);
}
bool FaultContext::set_vector_reg(unsigned i, const std::uint8_t in[16]) noexcept {
  return A::set_vector_reg(*uc_, i, in);
}
const void* FaultContext::simd_state() const noexcept { return A::simd_state(*uc_); }

}  // namespace faultline
