// tests/trap/emulate_support.hpp: what the emulation tests of every ISA share
// (tests/trap/test_emulate_<isa>.cpp): a handler that emulates a fault on a protected page against a
// copy and records the answer; and for heal(), an old and a new copy of an object, the forwarding
// function between them, and a fault handler that heals and reports what heal() answered.
#pragma once

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>

#include "faultline/emulate.hpp"
#include "faultline/trap.hpp"

namespace faultline::test {

// The target variant of emulate(): a fault on g_prot is emulated against g_copy; g_last is the answer
// (decode's, when it declines); anything declined is let through natively (the page made accessible).
inline std::uint8_t* g_prot = nullptr;
inline std::uint8_t* g_copy = nullptr;
inline EmulateStatus g_last = EmulateStatus::ok;

inline Disposition redirect(FaultContext& ctx, void*) {
  const auto a = ctx.address(), base = reinterpret_cast<std::uintptr_t>(g_prot);
  if (a < base || a >= base + 4096) return Disposition::declined;
  Instruction in;
  g_last = decode(ctx, &in);
  if (g_last == EmulateStatus::ok) g_last = emulate(ctx, reinterpret_cast<std::uintptr_t>(g_copy) + (in.memory.address - base));
  if (g_last != EmulateStatus::ok) mprotect(g_prot, 4096, PROT_READ | PROT_WRITE);  // let it run natively
  return Disposition::resolved;
}

inline std::uint8_t* g_old = nullptr;
inline std::uint8_t* g_new = nullptr;
inline EmulateStatus g_heal = EmulateStatus::ok;

inline std::uintptr_t forward(std::uintptr_t a, void*) {
  const auto o = reinterpret_cast<std::uintptr_t>(g_old);
  return a >= o && a < o + 4096 ? reinterpret_cast<std::uintptr_t>(g_new) + (a - o) : 0;
}

inline std::atomic<int>* g_heal_out = nullptr;  // where a forked child reports heal()'s answer

inline Disposition healing(FaultContext& ctx, void*) {
  g_heal = heal(ctx, forward, nullptr);
  if (g_heal_out != nullptr) g_heal_out->store(static_cast<int>(g_heal));
  return g_heal == EmulateStatus::ok ? Disposition::resolved : Disposition::declined;
}

// Maps the old copy (PROT_NONE) and the new one (42 at offset 24), and installs `healing`. For a
// run_child() body: _exit(90) when installing fails.
inline void prepare_heal_pages() {
  g_old = static_cast<std::uint8_t*>(mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  g_new = static_cast<std::uint8_t*>(mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (!install().ok() || !add_handler(healing, nullptr).ok()) _exit(90);
  const std::uint64_t v = 42;
  std::memcpy(g_new + 24, &v, 8);
}

// Runs `load` (an access to the old copy that heal() must refuse: no register provably points into the
// object) in a forked child, which reports heal()'s answer in *answer. True when the child died of
// SIGSEGV, as it must once the handler declines.
template <class Load>
bool refused_and_killed(std::atomic<int>* answer, Load load) {
  answer->store(-1);
  if (fork() == 0) {
    g_heal_out = answer;
    load(reinterpret_cast<std::uintptr_t>(g_old) + 24);
    _exit(3);
  }
  int st = 0;
  wait(&st);
  return WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV;
}

// Maps g_prot (PROT_NONE) and g_copy (a known word at offset 64, returned) and installs `redirect`. For a
// run_child() body: _exit(90) when installing fails.
inline std::uint64_t prepare_redirect_pages() {
  g_prot = static_cast<std::uint8_t*>(mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  g_copy = static_cast<std::uint8_t*>(mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (!install().ok() || !add_handler(redirect, nullptr).ok()) _exit(90);
  const std::uint64_t v = 0x1122334455667788ull;
  std::memcpy(g_copy + 64, &v, 8);
  return v;
}

// Loads the word at *p + 24 with *p as the base register (heal() may move it: *p is updated from the
// register afterwards).
inline std::uint64_t load_through_base(std::uint8_t** p) {
  std::uint64_t got = 0;
  std::uint8_t* base = *p;
#if defined(__x86_64__)
  asm volatile("movq 24(%1), %0" : "=r"(got), "+r"(base) : : "memory");
#elif defined(__aarch64__)
  asm volatile("ldr %0, [%1, #24]" : "=r"(got), "+r"(base) : : "memory");
#endif
  *p = base;
  return got;
}

// Loads from `address` with a base register of 0 and the address in the index (offset) register: no
// register provably points into an object.
inline void load_with_zero_base(std::uintptr_t address) {
  std::uint64_t zero = 0, out;
#if defined(__x86_64__)
  asm volatile("movq (%1,%2,1), %0" : "=r"(out) : "r"(zero), "r"(address) : "memory");
#elif defined(__aarch64__)
  asm volatile("ldr %0, [%1, %2]" : "=r"(out) : "r"(zero), "r"(address) : "memory");
#endif
}

}  // namespace faultline::test
