// arch/aarch64/cpu_aarch64.hpp: the aarch64 architecture layer (signal path: header-only and
// async-signal-safe, no allocation).
//
// Raw `svc #0` system calls (number in x8, arguments in x0-x5), register access over the kernel's
// struct sigcontext (regs[31], sp, pc, pstate, fault_address), and the signal frame's records: the
// kernel appends, in uc_mcontext.__reserved, a list of records each headed by {magic, size}, ended by a
// zero magic (Documentation/arch/arm64/sve.rst, arch/arm64/include/uapi/asm/sigcontext.h):
//   fpsimd_context (FPSIMD_MAGIC)  fpsr, fpcr and v0-v31: always present on Linux;
//   esr_context    (ESR_MAGIC)     the ESR_EL1 syndrome of a data or instruction abort: present for
//                                  faults on a real kernel, absent under qemu-user 7.2 (checked);
//   sve_context, za_context, ...   present on CPUs with those extensions: walked past, not read;
//   extra_context  (EXTRA_MAGIC)   the rest of the list lives at `datap` when it did not fit.
// The walk never reads past __reserved (or past the extra area) whatever the sizes say.
//
// Access kind. With an ESR record: EC (bits 31:26) 0x24/0x25 is a data abort, whose WnR bit (6) says
// write; 0x20/0x21 an instruction abort (execute); DFSC (bits 5:0) 0b0011xx a permission fault (the page
// was present). Without one, the faulting instruction is classified from its encoding (the A64 load and
// store classes, Arm ARM C4.1.66): it is readable, since the CPU has just fetched it for a data access,
// and a fault at the PC itself is an instruction fetch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <signal.h>
#include <sys/ucontext.h>

#include "faultline/context.hpp"
#include "faultline/regs.hpp"

namespace faultline::arch {

struct Aarch64 {
  static constexpr const char* kName = "aarch64";
  // AAPCS64 has no red zone: nothing below sp belongs to the interrupted code.
  static constexpr std::uintptr_t kRedZone = 0;
  // The FP/SIMD state travels inside the ucontext, as a record (a copied ucontext carries it).
  static constexpr bool kSimdInContext = true;

  static constexpr std::uint32_t kFpsimdMagic = 0x46508001;
  static constexpr std::uint32_t kEsrMagic = 0x45535201;
  static constexpr std::uint32_t kExtraMagic = 0x45585401;
  static constexpr std::uint32_t kSveMagic = 0x53564501;

  static long syscall6(long n, long a1, long a2, long a3, long a4, long a5, long a6) noexcept {
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a1;
    register long x1 __asm__("x1") = a2;
    register long x2 __asm__("x2") = a3;
    register long x3 __asm__("x3") = a4;
    register long x4 __asm__("x4") = a5;
    register long x5 __asm__("x5") = a6;
    __asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
    return x0;
  }

  static std::uintptr_t pc(const ucontext_t& uc) noexcept { return uc.uc_mcontext.pc; }
  static std::uintptr_t sp(const ucontext_t& uc) noexcept { return uc.uc_mcontext.sp; }
  static std::uintptr_t fp(const ucontext_t& uc) noexcept { return uc.uc_mcontext.regs[29]; }
  static void set_pc(ucontext_t& uc, std::uintptr_t v) noexcept { uc.uc_mcontext.pc = v; }
  static void set_sp(ucontext_t& uc, std::uintptr_t v) noexcept { uc.uc_mcontext.sp = v; }
  static std::uint64_t reg(const ucontext_t& uc, unsigned i) noexcept {
    if (i < 31) return uc.uc_mcontext.regs[i];
    switch (static_cast<Reg>(i)) {
      case Reg::sp: return uc.uc_mcontext.sp;
      case Reg::pc: return uc.uc_mcontext.pc;
      case Reg::pstate: return uc.uc_mcontext.pstate;
      default: return 0;
    }
  }
  static bool set_reg(ucontext_t& uc, unsigned i, std::uintptr_t v) noexcept {
    if (i < 31) {
      uc.uc_mcontext.regs[i] = v;
      return true;
    }
    switch (static_cast<Reg>(i)) {
      case Reg::sp: uc.uc_mcontext.sp = v; return true;
      case Reg::pc: uc.uc_mcontext.pc = v; return true;
      case Reg::pstate: uc.uc_mcontext.pstate = v; return true;
      default: return false;
    }
  }
  static const char* reg_name(unsigned i) noexcept { return faultline::reg_name(static_cast<Reg>(i)); }
  static std::uint64_t flags(const ucontext_t& uc) noexcept { return uc.uc_mcontext.pstate; }

  // The record with `magic` in the frame's list, or null. Bounded by __reserved and the extra area.
  static const void* find_record(const ucontext_t& uc, std::uint32_t magic) noexcept {
    const auto* p = reinterpret_cast<const std::uint8_t*>(uc.uc_mcontext.__reserved);
    const std::uint8_t* end = p + sizeof uc.uc_mcontext.__reserved;
    bool in_extra = false;
    while (p + 8 <= end) {
      std::uint32_t m, size;
      __builtin_memcpy(&m, p, 4);
      __builtin_memcpy(&size, p + 4, 4);
      if (m == 0) return nullptr;
      if (size < 8 || (size & 15) != 0 || size > static_cast<std::size_t>(end - p)) return nullptr;
      if (m == magic) return p;
      if (m == kExtraMagic && !in_extra && size >= 24) {
        std::uint64_t datap;
        std::uint32_t extra_size;
        __builtin_memcpy(&datap, p + 8, 8);
        __builtin_memcpy(&extra_size, p + 16, 4);
        if (datap == 0 || extra_size == 0) return nullptr;
        p = reinterpret_cast<const std::uint8_t*>(datap);
        end = p + extra_size;
        in_extra = true;
        continue;
      }
      p += size;
    }
    return nullptr;
  }
  static std::uint64_t hw_error_code(const ucontext_t& uc) noexcept {
    const auto* rec = static_cast<const std::uint8_t*>(find_record(uc, kEsrMagic));
    if (rec == nullptr) return 0;
    std::uint64_t esr;
    __builtin_memcpy(&esr, rec + 8, 8);
    return esr;
  }

  // Load or store, from the A64 encoding of a load/store instruction; unknown for anything else. The
  // emulator's decoder answers it (arch/aarch64/emulate_aarch64_sig.cpp): one table of the encodings.
  static Access classify_load_store(std::uint32_t w) noexcept;

  static Access access(const siginfo_t& si, const ucontext_t& uc) noexcept {
    if (si.si_signo != SIGSEGV && si.si_signo != SIGBUS) return Access::unknown;
    if (const std::uint64_t esr = hw_error_code(uc); esr != 0) {
      const unsigned ec = static_cast<unsigned>(esr >> 26) & 0x3f;
      if (ec == 0x20 || ec == 0x21) return Access::execute;
      if (ec == 0x24 || ec == 0x25) return (esr & (1u << 6)) ? Access::write : Access::read;
      return Access::unknown;
    }
    const std::uintptr_t at = pc(uc), addr = reinterpret_cast<std::uintptr_t>(si.si_addr);
    if (addr >= at && addr < at + 4) return Access::execute;  // the fetch itself faulted
    if ((at & 3) != 0) return Access::unknown;
    std::uint32_t w;
    __builtin_memcpy(&w, reinterpret_cast<const void*>(at), 4);  // fetched by the CPU just now
    return classify_load_store(w);
  }

  // The fpsimd record: fpsr, fpcr, then v0-v31 (16 bytes each) from byte 16.
  static const std::uint8_t* fpsimd(const ucontext_t& uc) noexcept {
    return static_cast<const std::uint8_t*>(find_record(uc, kFpsimdMagic));
  }
  static bool vector_reg(const ucontext_t& uc, unsigned i, std::uint8_t out[16]) noexcept {
    const std::uint8_t* f = fpsimd(uc);
    if (i >= kVectorRegCount || f == nullptr) return false;
    for (int b = 0; b < 16; ++b) out[b] = f[16 + 16 * i + b];
    return true;
  }
  // Writes v<i> as an FP/SIMD instruction would. When the frame also carries the SVE registers
  // (an sve_context longer than its header: the thread has live SVE state, or qemu-user with an SVE
  // CPU, which always sends them), sigreturn restores z<i> from there and ignores the fpsimd record, so
  // z<i> is written too: its low 16 bytes are v<i>, the rest is zeroed (as a write to v<i> does).
  static bool set_vector_reg(ucontext_t& uc, unsigned i, const std::uint8_t in[16]) noexcept {
    auto* f = const_cast<std::uint8_t*>(fpsimd(uc));
    if (i >= kVectorRegCount || f == nullptr) return false;
    for (int b = 0; b < 16; ++b) f[16 + 16 * i + b] = in[b];
    auto* sve = const_cast<std::uint8_t*>(static_cast<const std::uint8_t*>(find_record(uc, kSveMagic)));
    if (sve != nullptr) {
      std::uint32_t size;
      std::uint16_t vl;
      __builtin_memcpy(&size, sve + 4, 4);
      __builtin_memcpy(&vl, sve + 8, 2);
      const std::size_t zbytes = vl, at = 16 + zbytes * i;  // SVE_SIG_ZREG_OFFSET(vq, i)
      if (size > 16 && zbytes >= 16 && at + zbytes <= size) {
        for (std::size_t b = 0; b < zbytes; ++b) sve[at + b] = b < 16 ? in[b] : 0;
      }
    }
    return true;
  }
  static const void* simd_state(const ucontext_t& uc) noexcept { return fpsimd(uc); }
  // The FP/SIMD state lives inside the ucontext (its records): nothing to copy beside it.
  static std::size_t simd_state_size(const ucontext_t& uc) noexcept { return fpsimd(uc) != nullptr ? 528 : 0; }

  // Copies a signal frame's context into `dst` for later reading (stop-the-world). The records travel
  // inside the ucontext, so `xstate` is not needed; an extra_context area (very long SVE vectors) is not
  // copied, so its record is cut off (dst's list ends before it). Returns 0.
  static std::size_t capture(ucontext_t& dst, const ucontext_t& src, void*, std::size_t) noexcept {
    __builtin_memcpy(&dst, &src, sizeof(ucontext_t));
    if (const void* extra = find_record(dst, kExtraMagic); extra != nullptr) {
      __builtin_memset(const_cast<void*>(extra), 0, 8);  // the list now ends here
    }
    return 0;
  }
  // The general registers of a context as words (x0-x30, sp, pc, pstate: contiguous in sigcontext).
  static const std::uintptr_t* general_words(const ucontext_t& uc, std::size_t* n) noexcept {
    *n = 34;
    return reinterpret_cast<const std::uintptr_t*>(uc.uc_mcontext.regs);
  }
  // The FP/SIMD state a ucontext object holds inside itself (getcontext writes an fpsimd record too).
  static const void* own_simd_state(const ucontext_t& uc, std::size_t* len) noexcept {
    const std::uint8_t* f = fpsimd(uc);
    *len = f != nullptr ? 528 : 0;
    return f;
  }

  // Call injection; see arch/aarch64/inject_aarch64_sig.cpp. Same contract as on x86-64.
  static int inject_call(ucontext_t& uc, void (*fn)(void*), void* arg, std::uintptr_t stack_lo) noexcept;
  // Calls fn(arg) with the stack pointer at `top` (16-byte aligned down), then returns on the caller's
  // stack (stack_switch_aarch64_sig.cpp). Signal path.
  static void call_on_stack(void (*fn)(void*), void* arg, void* top) noexcept;

  // A permission fault (DFSC 0b0011xx): the page was mapped. Without an ESR record: unknown (false).
  static bool hw_present(const ucontext_t& uc) noexcept { return (hw_error_code(uc) & 0x3c) == 0x0c; }
};

using Current = Aarch64;

}  // namespace faultline::arch
