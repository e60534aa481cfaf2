// tests/trap/test_emulate.cpp: what the emulation API does on every ISA: the differential test (random
// instructions run natively and emulated), heal() moves the base register to
// the object's new copy and refuses what it cannot prove, and the status names. The ISA's own decoding and
// emulation tests are in test_emulate_<isa>.cpp.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>

#include "faultline/emulate.hpp"
#include "support/child.hpp"
#include "trap/emulate_support.hpp"
#if defined(__x86_64__)
#include "trap/emulate_diff_x86_64.hpp"
#elif defined(__aarch64__)
#include "trap/emulate_diff_aarch64.hpp"
#endif

namespace faultline {
namespace {

using namespace test;  // tests/support/, tests/trap/emulate_support.hpp

// Random supported instructions: native and emulated runs must end in the same state, bit for bit (under
// qemu-user, "native" is qemu's execution).
TEST(Emulate, DifferentialAgainstTheCpu) {
  ChildResult r = run_child([] {
    const int failures = differential<DiffRunner>(20261202, 30000, 10000);
    if (failures < 0) _exit(2);
    if (failures != 0) _exit(1);
  }, 300);
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
  std::printf("%s", r.output.c_str());
}

TEST(Heal, RewritesTheBaseRegisterAndRefusesWhatItCannotProve) {
  Shared<std::atomic<int>> refusal;
  ChildResult r = run_child([&] {
    prepare_heal_pages();
    std::uint8_t* p = g_old;  // a pointer to the old copy
    const std::uint64_t got = load_through_base(&p);
    if (g_heal != EmulateStatus::ok || got != 42 || p != g_new) _exit(1);  // the register now points to the new copy
    // A register that does not itself point into the moved object is not rewritten: heal() refuses
    // (not_a_pointer), the handler declines, and the fault kills. The grandchild reports what heal()
    // returned through shared memory.
    if (!refused_and_killed(&*refusal, load_with_zero_base)) _exit(4);
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
