// tests/test_core.cpp: core layer: formatter, epoch reclamation, page arithmetic, results.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "core/epoch.hpp"
#include "core/format.hpp"
#include "core/page.hpp"
#include "faultline/result.hpp"

namespace faultline {
namespace {

TEST(Formatter, FormatsNumbersAndStrings) {
  char buf[128];
  core::Formatter f(buf, sizeof buf);
  f.put("x=").dec(-42).put(' ').udec(18446744073709551615ull).put(' ').hex(0xdeadbeef).put(' ').hex(0x1f, 4)
      .put(' ').dec(0).put(' ').pad("ab", 4).put('|').put(nullptr);
  EXPECT_STREQ(f.c_str(), "x=-42 18446744073709551615 0xdeadbeef 0x001f 0 ab  |(null)");
  EXPECT_FALSE(f.truncated());
}

TEST(Formatter, MostNegativeNumber) {
  char buf[64];
  core::Formatter f(buf, sizeof buf);
  f.dec(INT64_MIN);
  EXPECT_STREQ(f.c_str(), "-9223372036854775808");
}

TEST(Formatter, TruncatesWithoutSink) {
  char buf[8];
  core::Formatter f(buf, sizeof buf);
  f.put("0123456789");
  EXPECT_TRUE(f.truncated());
  EXPECT_STREQ(f.c_str(), "0123456");
}

TEST(Formatter, FlushesThroughSinkWhenFull) {
  std::string out;
  char buf[8];
  core::Formatter f(
      buf, sizeof buf, [](void* ctx, const char* d, std::size_t n) { static_cast<std::string*>(ctx)->append(d, n); },
      &out);
  f.put("a long line that does not fit in eight bytes ").hex(0xabc);
  f.flush();
  EXPECT_EQ(out, "a long line that does not fit in eight bytes 0xabc");
  EXPECT_FALSE(f.truncated());
}

TEST(Format, ParseHexAndStrings) {
  const char* end = nullptr;
  EXPECT_EQ(core::parse_hex("7fffabc0-rest", &end), 0x7fffabc0u);
  EXPECT_EQ(*end, '-');
  EXPECT_EQ(core::parse_hex("xyz", &end), 0u);
  EXPECT_TRUE(core::str_eq("abc", "abc"));
  EXPECT_FALSE(core::str_eq("abc", "abd"));
  EXPECT_TRUE(core::str_starts_with("[stack]", "[st"));
  EXPECT_FALSE(core::str_starts_with("[st", "[stack]"));
  EXPECT_EQ(core::str_len("four"), 4u);
}

TEST(Page, Arithmetic) {
  EXPECT_EQ(core::page_size(), static_cast<std::size_t>(sysconf(_SC_PAGESIZE)));
  EXPECT_EQ(core::align_down(0x1234, 0x1000), 0x1000u);
  EXPECT_EQ(core::align_up(0x1234, 0x1000), 0x2000u);
  EXPECT_EQ(core::align_up(0x2000, 0x1000), 0x2000u);
  EXPECT_TRUE(core::is_aligned(0x3000, 0x1000));
  EXPECT_FALSE(core::is_aligned(0x3001, 0x1000));
  EXPECT_TRUE(core::is_pow2(4096));
  EXPECT_FALSE(core::is_pow2(0));
  EXPECT_FALSE(core::is_pow2(12));
}

TEST(Result, CarriesValueOrError) {
  Result<int> ok = 5;
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok.value(), 5);
  Result<int> bad = Error(Errc::invalid_argument, "nope");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), Errc::invalid_argument);
  EXPECT_EQ(bad.error().message(), "nope");
  EXPECT_STREQ(errc_name(Errc::overridden), "overridden");
  Error e = Error::from_errno("mprotect", EINVAL);
  EXPECT_EQ(e.code(), Errc::system_error);
  EXPECT_NE(e.message().find("EINVAL"), std::string::npos);
  EXPECT_EQ(Error::from_errno("userfaultfd", ENOSYS).code(), Errc::unsupported);
}

// A writer must not finish synchronize() while a reader that entered before it is still inside.
TEST(EpochDomain, SynchronizeWaitsForEarlierReaders) {
  core::EpochDomain d;
  unsigned side = d.enter();
  std::atomic<bool> done{false};
  std::atomic<int> spins{0};
  std::thread writer([&] {
    d.synchronize([&] {
      spins.fetch_add(1);
      std::this_thread::yield();
      return true;
    });
    done = true;
  });
  // The writer cannot complete while we hold the read side; wait until it has demonstrably spun.
  while (spins.load() < 100) std::this_thread::yield();
  EXPECT_FALSE(done.load());
  d.exit(side);
  writer.join();
  EXPECT_TRUE(done.load());
  EXPECT_EQ(d.readers(), 0);
}

TEST(EpochDomain, ReadersAfterFlipDoNotBlockWriter) {
  core::EpochDomain d;
  // Boundedness: a synchronize with no readers returns at once, and its bounded form reports a timeout.
  EXPECT_TRUE(d.synchronize([] { return false; }));
  unsigned side = d.enter();
  EXPECT_FALSE(d.synchronize([] { return false; }));
  d.exit(side);

  // A reader that enters after the flip (while synchronize() waits for an earlier one) is on the new
  // side: once the earlier reader leaves, synchronize() returns although the late reader is still inside.
  const unsigned early = d.enter();
  std::atomic<int> go{0}, entered{0}, release{0};
  std::thread late([&] {
    while (go.load() == 0) std::this_thread::yield();
    const unsigned s = d.enter();
    entered = 1;
    while (release.load() == 0) std::this_thread::yield();
    d.exit(s);
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  bool let_in = false;
  const bool returned = d.synchronize([&] {
    if (!let_in) {  // first wait: the epoch has flipped; let the late reader in, then the early one out
      let_in = true;
      go = 1;
      while (entered.load() == 0) std::this_thread::yield();
      d.exit(early);
    }
    std::this_thread::yield();
    return std::chrono::steady_clock::now() < deadline;  // bounded: a writer blocked by the late reader fails
  });
  const bool late_still_inside = entered.load() == 1 && release.load() == 0 && d.readers() == 1;
  release = 1;
  late.join();
  EXPECT_TRUE(let_in) << "synchronize() must wait while the early reader is inside";
  EXPECT_TRUE(returned) << "a reader that entered after the flip blocked the writer";
  EXPECT_TRUE(late_still_inside);
  EXPECT_EQ(d.readers(), 0);
}

// Stress: readers hold a pointer to a published object; writers replace and free it. A use-after-free
// would show as a wrong value (and under ASan as a report).
TEST(EpochDomain, ProtectsPublishedObjectsUnderStress) {
  core::EpochDomain d;
  struct Obj {
    std::atomic<int> value;
  };
  std::atomic<Obj*> current{new Obj{{7}}};
  std::atomic<bool> stop{false};
  std::atomic<long> bad{0}, reads{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 2; ++i) {
    readers.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        core::EpochReader guard(d);
        Obj* o = current.load(std::memory_order_acquire);
        if (o->value.load(std::memory_order_relaxed) != 7) bad.fetch_add(1);
        reads.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  while (reads.load() == 0) std::this_thread::yield();
  for (int i = 0; i < 2000; ++i) {
    Obj* fresh = new Obj{{7}};
    Obj* old = current.exchange(fresh, std::memory_order_acq_rel);
    d.synchronize([] {
      std::this_thread::yield();
      return true;
    });
    old->value.store(-1, std::memory_order_relaxed);  // poison, then free
    delete old;
  }
  stop = true;
  for (auto& t : readers) t.join();
  delete current.load();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(reads.load(), 0);
}

}  // namespace
}  // namespace faultline
