// tests/trap/test_emulate_x86_64.cpp: decoding, emulation (differential against the CPU), healing, and what is
// declined.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <atomic>
#include <cstring>
#include <random>
#include <string>

#include "support/child.hpp"
#include "trap/emulate_support.hpp"
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

// The target variant (the handler: tests/trap/emulate_support.hpp), and the declined instructions.
TEST(Emulate, RedirectsToATargetAndDeclinesWhatItCannotDoAtomically) {
  ChildResult r = run_child([] {
    const std::uint64_t v = prepare_redirect_pages();
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
    prepare_redirect_pages();
    auto* code = static_cast<std::uint8_t*>(
        mmap(nullptr, 8192, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
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

// Index-only with scale 1 is healed too (x86-64 addressing; the base case is in test_emulate.cpp).
TEST(Heal, IndexRegisterWithScaleOneIsHealed) {
  ChildResult r = run_child([&] {
    prepare_heal_pages();
    std::uint8_t* q = g_old;
    std::uint64_t got = 0;
    asm volatile("movq 24(,%1,1), %0" : "=r"(got), "+r"(q) : : "memory");
    if (g_heal != EmulateStatus::ok || got != 42 || q != g_new) _exit(2);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

}  // namespace
}  // namespace faultline
