// tests/test_context.cpp: the fault context on x86-64: access kinds, registers, SIMD, resuming elsewhere.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>

#include "support/child.hpp"
#include "faultline/context.hpp"
#include "faultline/trap.hpp"

namespace faultline {
namespace {

using namespace test;  // tests/support/

struct AccessSeen {
  Access access = Access::unknown;
  std::uintptr_t addr = 0;
  std::uint64_t err = 0;
  bool present = true;
  char code_name[32] = {};
  char signal_name[16] = {};
};
AccessSeen* g_access = nullptr;
char* g_target = nullptr;
int g_resume_prot = 0;

Disposition record_access(FaultContext& ctx, void*) {
  g_access->access = ctx.access();
  g_access->addr = ctx.address();
  g_access->err = ctx.hw_error_code();
  g_access->present = ctx.hw_present();
  std::strncpy(g_access->code_name, ctx.code_name(), sizeof g_access->code_name - 1);
  std::strncpy(g_access->signal_name, ctx.signal_name(), sizeof g_access->signal_name - 1);
  mprotect(g_target, 4096, g_resume_prot);
  return Disposition::resolved;
}

enum class Kind { read, write, execute };

AccessSeen fault_with(Kind kind) {
  Shared<AccessSeen> seen;
  Page page(PROT_READ | PROT_WRITE);
#if defined(__x86_64__)
  page.get()[0] = static_cast<char>(0xc3);  // ret: the page can be "called" once executable
#elif defined(__aarch64__)
  const std::uint32_t ret = 0xd65f03c0;  // ret
  std::memcpy(page.get(), &ret, 4);
  __builtin___clear_cache(page.get(), page.get() + 4);
#endif
  page.protect(PROT_NONE);
  ChildResult r = run_child([&] {
    g_access = &*seen;
    g_target = page.get();
    g_resume_prot = kind == Kind::execute ? PROT_READ | PROT_EXEC : PROT_READ | PROT_WRITE;
    if (!install().ok() || !add_handler(record_access, nullptr).ok()) _exit(90);
    switch (kind) {
      case Kind::read: (void)*reinterpret_cast<volatile char*>(page.get() + 16); break;
      case Kind::write: *reinterpret_cast<volatile char*>(page.get() + 16) = 1; break;
      case Kind::execute: reinterpret_cast<void (*)()>(page.get())(); break;
    }
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
  return *seen;
}

// What the hardware's own fault code says (x86-64: the page-fault error code; aarch64: the ESR of the
// frame's esr_context, which qemu-user never provides: then err is 0, the access kind comes from decoding
// the instruction, and only ctx.access() can be checked).
#if defined(__x86_64__)
bool hw_code_known(std::uint64_t) { return true; }
bool hw_says_read(std::uint64_t err) { return (err & 0x12) == 0; }
bool hw_says_write(std::uint64_t err) { return (err & 0x2) != 0; }
bool hw_says_execute(std::uint64_t err) { return (err & 0x10) != 0; }
#elif defined(__aarch64__)
bool hw_code_known(std::uint64_t err) { return err != 0; }
unsigned ec(std::uint64_t err) { return static_cast<unsigned>(err >> 26) & 0x3f; }
bool hw_says_read(std::uint64_t err) { return (ec(err) == 0x24 || ec(err) == 0x25) && (err & 0x40) == 0; }
bool hw_says_write(std::uint64_t err) { return (ec(err) == 0x24 || ec(err) == 0x25) && (err & 0x40) != 0; }
bool hw_says_execute(std::uint64_t err) { return ec(err) == 0x20 || ec(err) == 0x21; }
#endif

TEST(Access, ReadOnProtNone) {
  AccessSeen s = fault_with(Kind::read);
  EXPECT_EQ(s.access, Access::read);
  EXPECT_FALSE(s.present) << "PROT_NONE pages look not-present to the hardware";
  EXPECT_STREQ(s.code_name, "SEGV_ACCERR");
  EXPECT_STREQ(s.signal_name, "SIGSEGV");
  if (hw_code_known(s.err)) {
    EXPECT_TRUE(hw_says_read(s.err)) << std::hex << s.err;
  }
}

TEST(Access, WriteOnProtNone) {
  AccessSeen s = fault_with(Kind::write);
  EXPECT_EQ(s.access, Access::write);
  if (hw_code_known(s.err)) {
    EXPECT_TRUE(hw_says_write(s.err)) << std::hex << s.err;
  }
}

TEST(Access, ExecuteOnProtNone) {
  AccessSeen s = fault_with(Kind::execute);
  EXPECT_EQ(s.access, Access::execute);
  if (hw_code_known(s.err)) {
    EXPECT_TRUE(hw_says_execute(s.err)) << std::hex << s.err;
  }
}

TEST(Access, WriteToPresentReadOnlyPageSetsPresentBit) {
  Shared<AccessSeen> seen;
  Page page(PROT_READ | PROT_WRITE);
  page.get()[0] = 1;  // populate
  page.protect(PROT_READ);
  ChildResult r = run_child([&] {
    g_access = &*seen;
    g_target = page.get();
    g_resume_prot = PROT_READ | PROT_WRITE;
    if (!install().ok() || !add_handler(record_access, nullptr).ok()) _exit(90);
    *reinterpret_cast<volatile char*>(page.get() + 1) = 2;
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
  EXPECT_EQ(seen->access, Access::write);
  if (hw_code_known(seen->err)) {
    EXPECT_TRUE(seen->present);
  }  // without a hardware code it cannot be told
  EXPECT_EQ(seen->addr, reinterpret_cast<std::uintptr_t>(page.get() + 1));
}

TEST(Access, NamesAreStable) {
  EXPECT_STREQ(access_name(Access::read), "read");
  EXPECT_STREQ(access_name(Access::write), "write");
  EXPECT_STREQ(access_name(Access::execute), "execute");
  EXPECT_STREQ(access_name(Access::unknown), "unknown");
  EXPECT_STREQ(signal_code_name(SIGBUS, BUS_ADRERR), "BUS_ADRERR");
  EXPECT_STREQ(signal_code_name(SIGSEGV, SI_TKILL), "SI_TKILL");
  EXPECT_STREQ(signal_name(SIGILL), "SIGILL");
#if defined(__x86_64__)
  EXPECT_STREQ(reg_name(Reg::r13), "r13");
#elif defined(__aarch64__)
  EXPECT_STREQ(reg_name(Reg::x13), "x13");
  EXPECT_STREQ(reg_name(Reg::pstate), "pstate");
#endif
  EXPECT_STREQ(reg_name(static_cast<Reg>(99)), "?");
}

// Registers: known values are loaded, a load from a PROT_NONE page faults, the handler reads them all,
// rewrites the load's destination (kDest) and one more register (kOther) and moves the PC past the load.
// The faulting load and the registers it uses are the ISA's (below); the checks are the same.
#if defined(__x86_64__)
constexpr Reg kDest = Reg::rax, kOther = Reg::r13, kKeep1 = Reg::rbx, kKeep2 = Reg::r12, kKeep3 = Reg::r14,
              kKeep4 = Reg::r15, kKeep5 = Reg::r8, kKeep6 = Reg::r9, kAddr = Reg::rdi, kPc = Reg::rip,
              kSp = Reg::rsp, kFp = Reg::rbp;
constexpr unsigned kLoadLength = 3;  // mov (%rdi), %rax : 48 8b 07
#elif defined(__aarch64__)
constexpr Reg kDest = Reg::x0, kOther = Reg::x21, kKeep1 = Reg::x19, kKeep2 = Reg::x20, kKeep3 = Reg::x22,
              kKeep4 = Reg::x23, kKeep5 = Reg::x8, kKeep6 = Reg::x9, kAddr = Reg::x1, kPc = Reg::pc,
              kSp = Reg::sp, kFp = Reg::x29;
constexpr unsigned kLoadLength = 4;  // ldr x0, [x1]
#endif
constexpr std::uint64_t kKeepValues[6] = {0x1111111111111111ull, 0x1212121212121212ull, 0x1414141414141414ull,
                                          0x1515151515151515ull, 0x0808080808080808ull, 0x0909090909090909ull};
constexpr std::uint64_t kOtherValue = 0x0d0d0d0d0d0d0d0dull;

struct RegsSeen {
  std::uint64_t regs[static_cast<unsigned>(Reg::count)] = {};
  std::uint8_t v3[16] = {};
  bool v3_ok = false;
  std::uintptr_t pc = 0, sp = 0, fp = 0;
  bool set_ok = false;
  bool set_bad_rejected = false;
};
RegsSeen* g_regs = nullptr;

Disposition record_and_rewrite(FaultContext& ctx, void*) {
  for (unsigned i = 0; i < static_cast<unsigned>(Reg::count); ++i) g_regs->regs[i] = ctx.reg(static_cast<Reg>(i));
  g_regs->v3_ok = ctx.vector_reg(3, g_regs->v3);
  g_regs->pc = ctx.pc();
  g_regs->sp = ctx.sp();
  g_regs->fp = ctx.fp();
  g_regs->set_ok = ctx.set_reg(kDest, 0xfeedfacecafef00dull) && ctx.set_reg(kOther, 0x1313131313131313ull);
  g_regs->set_bad_rejected = !ctx.set_reg(static_cast<Reg>(1000), 1);
  std::uint8_t v[16];
  for (int i = 0; i < 16; ++i) v[i] = static_cast<std::uint8_t>(0xa0 + i);
  ctx.set_vector_reg(4, v);
  ctx.set_pc(ctx.pc() + kLoadLength);
  return Disposition::resolved;
}

// What the thread holds after the faulting load: the destination, kOther, kKeep1, kKeep2 and vector 4.
struct RegsOut {
  std::uint64_t dest, other, keep1, keep2;
  std::uint8_t v4[16];
};

// Loads the known values (vector 3 from `pattern`), then loads from `p` (which faults), then stores what
// the registers hold into *out.
void load_known_registers_and_fault(const void* p, const std::uint8_t* pattern, RegsOut* out) {
#if defined(__x86_64__)
  __asm__ volatile(
      "movdqu (%[pat]), %%xmm3\n"
      "mov 0(%[k]), %%rbx\n"
      "mov 8(%[k]), %%r12\n"
      "mov 16(%[k]), %%r14\n"
      "mov 24(%[k]), %%r15\n"
      "mov 32(%[k]), %%r8\n"
      "mov 40(%[k]), %%r9\n"
      "mov %[o], %%r13\n"
      "mov %[p], %%rdi\n"
      ".byte 0x48, 0x8b, 0x07\n"  // mov (%rdi), %rax : faults
      "mov %%rax, 0(%[out])\n"
      "mov %%r13, 8(%[out])\n"
      "mov %%rbx, 16(%[out])\n"
      "mov %%r12, 24(%[out])\n"
      "movdqu %%xmm4, 32(%[out])\n"
      :
      : [p] "r"(p), [pat] "r"(pattern), [k] "r"(kKeepValues), [o] "r"(kOtherValue), [out] "r"(out)
      : "rax", "rbx", "rdi", "r8", "r9", "r12", "r13", "r14", "r15", "xmm3", "xmm4", "memory");
#elif defined(__aarch64__)
  register const void* out_reg __asm__("x10") = out;
  __asm__ volatile(
      "ldr q3, [%[pat]]\n"
      "ldp x19, x20, [%[k]]\n"
      "ldp x22, x23, [%[k], #16]\n"
      "ldp x8, x9, [%[k], #32]\n"
      "mov x21, %[o]\n"
      "mov x1, %[p]\n"
      "ldr x0, [x1]\n"  // faults
      "stp x0, x21, [%[out]]\n"
      "stp x19, x20, [%[out], #16]\n"
      "str q4, [%[out], #32]\n"
      :
      : [p] "r"(p), [pat] "r"(pattern), [k] "r"(kKeepValues), [o] "r"(kOtherValue), [out] "r"(out_reg)
      : "x0", "x1", "x8", "x9", "x19", "x20", "x21", "x22", "x23", "v3", "v4", "memory");
#endif
}

TEST(Registers, HandlerSeesAndRewritesRegisters) {
  Shared<RegsSeen> seen;
  Page page(PROT_NONE);
  Shared<RegsOut> out;
  ChildResult r = run_child([&] {
    g_regs = &*seen;
    if (!install().ok() || !add_handler(record_and_rewrite, nullptr).ok()) _exit(90);
    alignas(16) static const std::uint8_t pattern[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    alignas(16) RegsOut local{};
    load_known_registers_and_fault(page.get(), pattern, &local);
    *out = local;
  });
  ASSERT_TRUE(r.exited() && r.exit_code() == 0) << r;
  auto reg = [&](Reg x) { return seen->regs[static_cast<unsigned>(x)]; };
  EXPECT_EQ(reg(kKeep1), kKeepValues[0]);
  EXPECT_EQ(reg(kKeep2), kKeepValues[1]);
  EXPECT_EQ(reg(kOther), kOtherValue);
  EXPECT_EQ(reg(kKeep3), kKeepValues[2]);
  EXPECT_EQ(reg(kKeep4), kKeepValues[3]);
  EXPECT_EQ(reg(kKeep5), kKeepValues[4]);
  EXPECT_EQ(reg(kKeep6), kKeepValues[5]);
  EXPECT_EQ(reg(kAddr), reinterpret_cast<std::uint64_t>(page.get()));
  EXPECT_EQ(reg(kPc), seen->pc);
  EXPECT_EQ(reg(kSp), seen->sp);
  EXPECT_EQ(reg(kFp), seen->fp);
  ASSERT_TRUE(seen->v3_ok);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(seen->v3[i], i + 1);
  EXPECT_TRUE(seen->set_ok);
  EXPECT_TRUE(seen->set_bad_rejected);
  // The thread resumed with the rewritten registers, after the faulting instruction.
  EXPECT_EQ(out->dest, 0xfeedfacecafef00dull);
  EXPECT_EQ(out->other, 0x1313131313131313ull);
  EXPECT_EQ(out->keep1, kKeepValues[0]);
  EXPECT_EQ(out->keep2, kKeepValues[1]);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(out->v4[i], 0xa0 + i);
}

// Resuming elsewhere: the handler moves the PC to a recovery function.
std::atomic<int>* g_recovered = nullptr;
void recovery_point() {
  g_recovered->store(1);
  _exit(33);
}
Disposition jump_to_recovery(FaultContext& ctx, void*) {
  ctx.set_pc(reinterpret_cast<std::uintptr_t>(&recovery_point));
  // Keep the stack aligned as at a function's entry (on x86-64 a call pushes 8 bytes).
#if defined(__x86_64__)
  ctx.set_sp((ctx.sp() & ~std::uintptr_t{15}) - 8);
#else
  ctx.set_sp(ctx.sp() & ~std::uintptr_t{15});
#endif
  return Disposition::resolved;
}

TEST(Registers, ResumeElsewhere) {
  Shared<std::atomic<int>> recovered;
  Page page(PROT_NONE);
  ChildResult r = run_child([&] {
    g_recovered = &*recovered;
    if (!install().ok() || !add_handler(jump_to_recovery, nullptr).ok()) _exit(90);
    *reinterpret_cast<volatile char*>(page.get()) = 1;
    _exit(1);
  });
  EXPECT_EQ(r.exit_code(), 33) << r;
  EXPECT_EQ(recovered->load(), 1);
}

// A context captured with getcontext (no siginfo) reads the same way.
TEST(Context, CapturedContextWithoutSiginfo) {
  ucontext_t uc;
  ASSERT_EQ(getcontext(&uc), 0);
  FaultContext ctx(&uc);
  EXPECT_EQ(ctx.signal(), 0);
  EXPECT_EQ(ctx.address(), 0u);
  EXPECT_EQ(ctx.access(), Access::unknown);
  EXPECT_FALSE(ctx.is_kernel_fault());
  EXPECT_STREQ(ctx.code_name(), "none");
  EXPECT_NE(ctx.pc(), 0u);
  EXPECT_NE(ctx.sp(), 0u);
  EXPECT_EQ(ctx.reg(kSp), ctx.sp());
}

}  // namespace
}  // namespace faultline
