// tests/test_emulate.cpp: decoding, emulation (differential against the CPU), healing, and what is
// declined.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <atomic>
#include <cstring>
#include <random>
#include <string>

#include "support/child.hpp"
#include "trap/emulate_diff.hpp"
#include "faultline/emulate.hpp"
#include "faultline/trap.hpp"

namespace faultline {
namespace {

using namespace test;  // tests/support/

TEST(Decode, MemoryOperandOfAKnownInstruction) {
  const std::uint8_t mov[] = {0x48, 0x8b, 0x44, 0x8b, 0x10};  // mov rax, [rbx+rcx*4+0x10]
  Instruction in;
  ASSERT_EQ(decode_bytes(mov, sizeof mov, &in), EmulateStatus::ok);
  EXPECT_EQ(in.length, 5u);
  EXPECT_STREQ(in.mnemonic, "mov");
  EXPECT_EQ(in.operand_width, 64u);
  ASSERT_TRUE(in.has_memory);
  EXPECT_EQ(in.memory.base, static_cast<unsigned>(Reg::rbx));
  EXPECT_EQ(in.memory.index, static_cast<unsigned>(Reg::rcx));
  EXPECT_EQ(in.memory.scale, 4u);
  EXPECT_EQ(in.memory.displacement, 0x10);
  EXPECT_EQ(in.memory.size, 8u);
  EXPECT_TRUE(in.memory.read);
  EXPECT_FALSE(in.memory.write);

  const std::uint8_t store[] = {0x66, 0x89, 0x0d, 0x00, 0x01, 0x00, 0x00};  // mov [rip+0x100], cx
  ASSERT_EQ(decode_bytes(store, sizeof store, &in), EmulateStatus::ok);
  EXPECT_EQ(in.memory.base, static_cast<unsigned>(Reg::rip));
  EXPECT_EQ(in.memory.size, 2u);
  EXPECT_TRUE(in.memory.write);

  const std::uint8_t junk[] = {0x0f, 0xff};
  EXPECT_EQ(decode_bytes(junk, sizeof junk, &in), EmulateStatus::undecodable);
  EXPECT_EQ(decode_bytes(nullptr, 0, &in), EmulateStatus::undecodable);
}

// Random supported instructions: native and emulated runs must end in the same state, bit for bit.
TEST(Emulate, DifferentialAgainstTheCpu) {
  ChildResult r = run_child([] {
    test::DiffRunner runner;
    std::mt19937_64 rng(20261122);
    auto rnd = [&] { return rng(); };
    int ran = 0, failures = 0;
    for (int i = 0; i < 30000 && failures < 10; ++i) {
      test::DiffCase c;
      if (!runner.generate(rnd, &c)) continue;
      const std::string diff = runner.run(c, rnd);
      ++ran;
      if (!diff.empty()) {
        std::fprintf(stderr, "%s: %s\n", c.text.c_str(), diff.c_str());
        ++failures;
      }
    }
    std::fprintf(stderr, "%d instructions compared\n", ran);
    if (ran < 10000) _exit(2);
    if (failures != 0) _exit(1);
  }, 300);
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// The target variant, and the declined instructions.
std::uint8_t* g_prot = nullptr;
std::uint8_t* g_copy = nullptr;
EmulateStatus g_last = EmulateStatus::ok;

Disposition redirect(FaultContext& ctx, void*) {
  const auto a = ctx.address(), base = reinterpret_cast<std::uintptr_t>(g_prot);
  if (a < base || a >= base + 4096) return Disposition::declined;
  Instruction in;
  if (decode(ctx, &in) != EmulateStatus::ok) return Disposition::declined;
  g_last = emulate(ctx, reinterpret_cast<std::uintptr_t>(g_copy) + (in.memory.address - base));
  if (g_last != EmulateStatus::ok) mprotect(g_prot, 4096, PROT_READ | PROT_WRITE);  // let it run natively
  return Disposition::resolved;
}

TEST(Emulate, RedirectsToATargetAndDeclinesWhatItCannotDoAtomically) {
  ChildResult r = run_child([] {
    g_prot = static_cast<std::uint8_t*>(mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    g_copy = static_cast<std::uint8_t*>(mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (!install().ok() || !add_handler(redirect, nullptr).ok()) _exit(90);
    std::uint64_t v = 0x1122334455667788ull;
    std::memcpy(g_copy + 64, &v, 8);
    std::uint64_t got;
    asm volatile("movq 64(%1), %0" : "=r"(got) : "r"(g_prot) : "memory");
    if (g_last != EmulateStatus::ok || got != v) _exit(1);
    asm volatile("addq $5, 64(%0)" : : "r"(g_prot) : "memory", "cc");
    std::memcpy(&got, g_copy + 64, 8);
    if (g_last != EmulateStatus::ok || got != v + 5) _exit(2);
    // XCHG with memory and LOCK-prefixed instructions are declined, not emulated non-atomically.
    std::uint64_t x = 1;
    mprotect(g_prot, 4096, PROT_NONE);
    asm volatile("xchgq %0, 128(%1)" : "+r"(x) : "r"(g_prot) : "memory");
    if (g_last != EmulateStatus::not_atomic) _exit(3);
    mprotect(g_prot, 4096, PROT_NONE);
    asm volatile("lock addq $1, 136(%0)" : : "r"(g_prot) : "memory", "cc");
    if (g_last != EmulateStatus::not_atomic) _exit(4);
    mprotect(g_prot, 4096, PROT_NONE);
    asm volatile("vmovdqu 160(%0), %%xmm1" : : "r"(g_prot) : "memory", "xmm1");
    if (g_last != EmulateStatus::vex) _exit(5);
    mprotect(g_prot, 4096, PROT_NONE);
    asm volatile("imulq 168(%0), %%rax" : : "r"(g_prot) : "memory", "rax", "cc");
    if (g_last != EmulateStatus::unsupported) _exit(6);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// An instruction that straddles a page boundary is read from both pages.
TEST(Emulate, InstructionAcrossAPageBoundary) {
  ChildResult r = run_child([] {
    g_prot = static_cast<std::uint8_t*>(mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    g_copy = static_cast<std::uint8_t*>(mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    auto* code = static_cast<std::uint8_t*>(
        mmap(nullptr, 8192, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (!install().ok() || !add_handler(redirect, nullptr).ok()) _exit(90);
    // mov rax, [rdi+0x40]; ret: 48 8b 47 40 c3, split 2 + 3 across the boundary.
    const std::uint8_t insn[] = {0x48, 0x8b, 0x47, 0x40, 0xc3};
    std::memcpy(code + 4096 - 2, insn, sizeof insn);
    std::uint64_t v = 0xfeedfacecafebeefull;
    std::memcpy(g_copy + 0x40, &v, 8);
    auto fn = reinterpret_cast<std::uint64_t (*)(void*)>(code + 4096 - 2);
    if (fn(g_prot) != v || g_last != EmulateStatus::ok) _exit(1);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// heal(): the register that held the old object's address is moved to the new copy.
std::uint8_t* g_old = nullptr;
std::uint8_t* g_new = nullptr;
EmulateStatus g_heal = EmulateStatus::ok;

std::uintptr_t forward(std::uintptr_t a, void*) {
  const auto o = reinterpret_cast<std::uintptr_t>(g_old);
  return a >= o && a < o + 4096 ? reinterpret_cast<std::uintptr_t>(g_new) + (a - o) : 0;
}

std::atomic<int>* g_heal_out = nullptr;  // where a forked child reports heal()'s answer

Disposition healing(FaultContext& ctx, void*) {
  g_heal = heal(ctx, forward, nullptr);
  if (g_heal_out != nullptr) g_heal_out->store(static_cast<int>(g_heal));
  return g_heal == EmulateStatus::ok ? Disposition::resolved : Disposition::declined;
}

TEST(Heal, RewritesTheBaseRegisterAndRefusesWhatItCannotProve) {
  Shared<std::atomic<int>> refusal;
  ChildResult r = run_child([&] {
    g_old = static_cast<std::uint8_t*>(mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    g_new = static_cast<std::uint8_t*>(mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (!install().ok() || !add_handler(healing, nullptr).ok()) _exit(90);
    std::uint64_t v = 42;
    std::memcpy(g_new + 24, &v, 8);
    std::uint8_t* p = g_old;  // a pointer to the old copy
    std::uint64_t got = 0;
    asm volatile("movq 24(%1), %0" : "=r"(got), "+r"(p) : : "memory");
    if (g_heal != EmulateStatus::ok || got != 42 || p != g_new) _exit(1);  // the register now points to the new copy
    // Index-only with scale 1 is healed too.
    std::uint8_t* q = g_old;
    asm volatile("movq 24(,%1,1), %0" : "=r"(got), "+r"(q) : : "memory");
    if (g_heal != EmulateStatus::ok || q != g_new) _exit(2);
    // A register that does not itself point into the moved object is not rewritten: heal() refuses
    // (not_a_pointer), the handler declines, and the fault kills. The grandchild reports what heal()
    // returned through shared memory.
    refusal->store(-1);
    if (fork() == 0) {
      g_heal_out = &*refusal;
      std::uintptr_t off = reinterpret_cast<std::uintptr_t>(g_old) + 24;
      std::uint64_t zero = 0;
      asm volatile("movq (%1,%2,1), %0" : "=r"(got) : "r"(zero), "r"(off) : "memory");  // base 0, index -> object
      _exit(3);
    }
    int st = 0;
    wait(&st);
    if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGSEGV) _exit(4);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
  EXPECT_EQ(refusal->load(), static_cast<int>(EmulateStatus::not_a_pointer))
      << "heal() must refuse a base of 0 with the object in the index register, as not_a_pointer";
}

TEST(Emulate, StatusNames) {
  EXPECT_STREQ(emulate_status_name(EmulateStatus::not_atomic), "not_atomic");
  EXPECT_STREQ(emulate_status_name(EmulateStatus::not_a_pointer), "not_a_pointer");
}

}  // namespace
}  // namespace faultline
