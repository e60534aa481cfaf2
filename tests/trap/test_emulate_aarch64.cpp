// tests/trap/test_emulate_aarch64.cpp: A64 load/store decoding, emulation (differential against the CPU,
// or qemu's execution under qemu-user), healing, and what is declined (the aarch64 twin of
// test_emulate_x86_64.cpp).
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include <atomic>
#include <cstring>
#include <string>

#include "faultline/emulate.hpp"
#include "faultline/trap.hpp"
#include "support/child.hpp"
#include "trap/emulate_support.hpp"

namespace faultline {
namespace {

using namespace test;  // tests/support/

Instruction decoded(std::uint32_t word) {
  Instruction in;
  std::uint8_t b[4];
  std::memcpy(b, &word, 4);
  EXPECT_EQ(decode_bytes(b, 4, &in), EmulateStatus::ok) << std::hex << word;
  return in;
}

EmulateStatus status_of(std::uint32_t word) {
  Instruction in;
  std::uint8_t b[4];
  std::memcpy(b, &word, 4);
  return decode_bytes(b, 4, &in);
}

TEST(Decode, MemoryOperandsOfKnownInstructions) {
  Instruction in = decoded(0xf9400420);  // ldr x0, [x1, #8]
  EXPECT_EQ(in.length, 4u);
  EXPECT_STREQ(in.mnemonic, "ldr");
  EXPECT_TRUE(in.has_memory);
  EXPECT_EQ(in.memory.base, static_cast<unsigned>(Reg::x1));
  EXPECT_EQ(in.memory.displacement, 8);
  EXPECT_EQ(in.memory.size, 8u);
  EXPECT_TRUE(in.memory.read);
  EXPECT_FALSE(in.memory.write);

  in = decoded(0x79000062);  // strh w2, [x3]
  EXPECT_STREQ(in.mnemonic, "strh");
  EXPECT_EQ(in.memory.size, 2u);
  EXPECT_TRUE(in.memory.write);

  in = decoded(0xadff0440);  // ldp q0, q1, [x2, #-32]!
  EXPECT_STREQ(in.mnemonic, "ldp");
  EXPECT_EQ(in.memory.size, 32u);
  EXPECT_EQ(in.memory.displacement, -32);

  in = decoded(0xb865d883);  // ldr w3, [x4, w5, sxtw #2]
  EXPECT_EQ(in.memory.base, static_cast<unsigned>(Reg::x4));
  EXPECT_EQ(in.memory.index, static_cast<unsigned>(Reg::x5));
  EXPECT_EQ(in.memory.scale, 4u);

  // Atomic, exclusive, literal and structure forms decode (heal() can move their base register); the
  // Redirect test below shows emulate() declining them.
  in = decoded(0xc85f7c20);  // ldxr x0, [x1]
  EXPECT_EQ(in.memory.base, static_cast<unsigned>(Reg::x1));
  in = decoded(0xf8200041);  // ldadd x0, x1, [x2]
  EXPECT_EQ(in.memory.base, static_cast<unsigned>(Reg::x2));
  EXPECT_TRUE(in.memory.read && in.memory.write);
  in = decoded(0x58000080);  // ldr x0, <literal>
  EXPECT_EQ(in.memory.base, static_cast<unsigned>(Reg::pc));
  in = decoded(0x4c407c00);  // ld1 {v0.2d}, [x0]
  EXPECT_EQ(in.memory.base, static_cast<unsigned>(Reg::x0));
  EXPECT_EQ(status_of(0x8b020020), EmulateStatus::no_memory_operand);  // add x0, x1, x2
  EXPECT_EQ(decode_bytes(nullptr, 0, &in), EmulateStatus::undecodable);
}

// The target variant (the handler: tests/trap/emulate_support.hpp), and the declined instructions.
TEST(Emulate, RedirectsToATargetAndDeclinesWhatItCannotDoAtomically) {
  ChildResult r = run_child([] {
    const std::uint64_t v = prepare_redirect_pages();
    std::uint64_t got;
    asm volatile("ldr %0, [%1, #64]" : "=r"(got) : "r"(g_prot) : "memory");
    if (g_last != EmulateStatus::ok || got != v) _exit(1);
    asm volatile("str %0, [%1, #72]" : : "r"(v + 5), "r"(g_prot) : "memory");
    std::memcpy(&got, g_copy + 72, 8);
    if (g_last != EmulateStatus::ok || got != v + 5) _exit(2);
    // Exclusive and atomic forms are declined, not emulated non-atomically.
    mprotect(g_prot, 4096, PROT_NONE);
    std::uint64_t x;
    asm volatile("ldxr %0, [%1]" : "=r"(x) : "r"(g_prot + 128) : "memory");
    if (g_last != EmulateStatus::not_atomic) _exit(3);
    mprotect(g_prot, 4096, PROT_NONE);
    asm volatile("ldar %0, [%1]" : "=r"(x) : "r"(g_prot + 136) : "memory");
    if (g_last != EmulateStatus::not_atomic) _exit(4);
    mprotect(g_prot, 4096, PROT_NONE);
    asm volatile("ld1 {v1.2d}, [%0]" : : "r"(g_prot + 160) : "memory", "v1");
    if (g_last != EmulateStatus::unsupported) _exit(5);
    (void)x;
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

}  // namespace
}  // namespace faultline
