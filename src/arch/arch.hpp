// arch/arch.hpp: selects the architecture layer and states what every architecture must provide.
//
// An architecture is one class of static functions (snmalloc's style): raw system calls, access to a
// ucontext's registers, the hardware's access kind for a fault, and resuming elsewhere. The concept
// below is the whole contract: a new ISA is a new folder whose class satisfies it. Everything here is
// header-only and async-signal-safe.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <signal.h>
#include <ucontext.h>

#include "faultline/context.hpp"

#if defined(__x86_64__)
#include "arch/x86_64/cpu_x86_64.hpp"
#elif defined(__aarch64__)
#include "arch/aarch64/cpu_aarch64.hpp"
#else
#error "faultline: unsupported architecture (x86-64 and aarch64 are supported)"
#endif

namespace faultline::arch {

template <class A>
concept Architecture = requires(long n, long a, ucontext_t& uc, const ucontext_t& cuc, const siginfo_t& si,
                                std::uintptr_t v, unsigned i) {
  { A::kName } -> std::convertible_to<const char*>;
  { A::kRedZone } -> std::convertible_to<std::uintptr_t>;
  { A::syscall6(n, a, a, a, a, a, a) } noexcept -> std::same_as<long>;
  { A::pc(cuc) } noexcept -> std::same_as<std::uintptr_t>;
  { A::sp(cuc) } noexcept -> std::same_as<std::uintptr_t>;
  { A::fp(cuc) } noexcept -> std::same_as<std::uintptr_t>;
  { A::set_pc(uc, v) } noexcept;
  { A::set_sp(uc, v) } noexcept;
  { A::reg(cuc, i) } noexcept -> std::same_as<std::uint64_t>;
  { A::set_reg(uc, i, v) } noexcept -> std::same_as<bool>;
  { A::reg_name(i) } noexcept -> std::same_as<const char*>;
  { A::flags(cuc) } noexcept -> std::same_as<std::uint64_t>;
  { A::access(si, cuc) } noexcept -> std::same_as<Access>;
  { A::hw_error_code(cuc) } noexcept -> std::same_as<std::uint64_t>;
  { A::hw_present(cuc) } noexcept -> std::same_as<bool>;
  { A::simd_state(cuc) } noexcept -> std::same_as<const void*>;
  { A::simd_state_size(cuc) } noexcept -> std::same_as<std::size_t>;
  { A::capture(uc, cuc, static_cast<void*>(nullptr), std::size_t{}) } noexcept -> std::same_as<std::size_t>;
  { A::general_words(cuc, static_cast<std::size_t*>(nullptr)) } noexcept -> std::same_as<const std::uintptr_t*>;
  { A::own_simd_state(cuc, static_cast<std::size_t*>(nullptr)) } noexcept -> std::same_as<const void*>;
  { A::inject_call(uc, static_cast<void (*)(void*)>(nullptr), static_cast<void*>(nullptr), v) } noexcept
      -> std::same_as<int>;
  { A::call_on_stack(static_cast<void (*)(void*)>(nullptr), static_cast<void*>(nullptr), static_cast<void*>(nullptr)) }
      noexcept;
};

static_assert(Architecture<Current>, "the architecture layer does not satisfy the contract");

// The general registers a context exposes (faultline/regs.hpp numbers them per ISA).
inline constexpr unsigned kRegCount = static_cast<unsigned>(Reg::count);

}  // namespace faultline::arch
