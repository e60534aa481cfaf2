// tests/region/test_table.cpp: the region table: clear errors for bad registrations, exact lookup across
// many regions in any order, and stress: faults while regions come and go, thousands of filled regions
// while the table changes.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "faultline/internal/bench.hpp"
#include "faultline/region.hpp"
#include "region/table.hpp"
#include "support/child.hpp"
#include "support/pages.hpp"

namespace faultline {
namespace {

using namespace test;  // tests/support/

TEST(RegionTable, BadRegistrationsGetClearErrors) {
  EXPECT_EQ(reserve_region(0, on_signals("z", Policy::zero_fill)).error().code(), Errc::invalid_argument);
  auto mis = reserve_region(kPage + 1, on_signals("m", Policy::zero_fill));
  ASSERT_FALSE(mis.ok());
  EXPECT_NE(mis.error().message().find("multiple of the page size"), std::string::npos);
  EXPECT_EQ(reserve_region(kPage, on_signals("b", Policy::barrier)).error().code(), Errc::invalid_argument);
  RegionOptions fa = on_signals("fa", Policy::zero_fill);
  fa.fault_around = 0;
  EXPECT_EQ(reserve_region(kPage, fa).error().code(), Errc::invalid_argument);
  EXPECT_EQ(reserve_region(kPage, on_signals("np", Policy::zero_fill, perm_none)).error().code(), Errc::invalid_argument);
  EXPECT_EQ(reserve_region(kPage, on_signals("tw", Policy::track_dirty, perm_read)).error().code(), Errc::invalid_argument);
  EXPECT_EQ(adopt_region(nullptr, kPage, on_signals("n", Policy::guard)).error().code(), Errc::invalid_argument);
  // A remote pager's socket on the signal backend: the message names that, not every rule at once.
  RegionOptions remote = on_signals("r", Policy::pager);
  remote.remote_pager_socket = 0;
  auto rs = reserve_region(kPage, remote);
  ASSERT_FALSE(rs.ok());
  EXPECT_NE(rs.error().message().find("remote_pager_socket: Backend::signals"), std::string::npos) << rs.error().message();

  Page mem(PROT_READ | PROT_WRITE, 4);
  EXPECT_EQ(adopt_region(mem.get() + 1, kPage, on_signals("a", Policy::guard)).error().code(), Errc::invalid_argument);
  auto a = adopt_region(mem.get(), 2 * kPage, on_signals("first", Policy::guard));
  ASSERT_TRUE(a.ok()) << a.error().message();
  auto overlap = adopt_region(mem.get() + kPage, 2 * kPage, on_signals("second", Policy::guard));
  ASSERT_FALSE(overlap.ok());
  EXPECT_EQ(overlap.error().code(), Errc::already_exists);
  EXPECT_NE(overlap.error().message().find("overlaps region 'first'"), std::string::npos) << overlap.error().message();
  // Unmapped memory.
  void* hole = mmap(nullptr, 2 * kPage, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  munmap(static_cast<char*>(hole) + kPage, kPage);
  auto unmapped = adopt_region(hole, 2 * kPage, on_signals("hole", Policy::guard));
  EXPECT_EQ(unmapped.error().code(), Errc::invalid_argument);
  EXPECT_NE(unmapped.error().message().find("not entirely mapped"), std::string::npos);
  munmap(hole, kPage);
}

TEST(RegionTable, LookupIsExactAcrossManyRegionsInAnyOrder) {
  const std::size_t n = 3000;  // spans many leaves
  Page mem(PROT_NONE, n * 2);
  std::vector<std::size_t> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937(42));
  std::vector<Region> regions(n);
  const std::size_t base_count = region_count();
  for (std::size_t i : order) {  // every other page is a region; the pages between are holes
    auto r = adopt_region(mem.get() + 2 * i * kPage, kPage, on_signals("r", Policy::guard));
    ASSERT_TRUE(r.ok()) << r.error().message();
    regions[i] = std::move(r.value());
  }
  EXPECT_EQ(region_count(), base_count + n);
  for (std::size_t i = 0; i < n; ++i) {
    auto a = reinterpret_cast<std::uintptr_t>(mem.get() + 2 * i * kPage);
    auto* r = region::lookup(a + 17);
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->base, a);
    EXPECT_EQ(region::lookup(a + kPage), nullptr) << "the hole after region " << i;
  }
  for (std::size_t i = 0; i < n; i += 2) ASSERT_TRUE(regions[i].reset().ok());
  for (std::size_t i = 0; i < n; ++i) {
    auto a = reinterpret_cast<std::uintptr_t>(mem.get() + 2 * i * kPage);
    EXPECT_EQ(region::lookup(a) != nullptr, i % 2 == 1) << i;
  }
  regions.clear();
  EXPECT_EQ(region_count(), base_count);
}

// A leaf is searched by its cache lines (8 bases a line: the line, then the entry within it), or whole
// when it holds two lines at most. Every size of table across those edges (this process may hold a few
// regions of its own: they only shift where the edges fall) finds each region's first and last byte,
// and nothing in the hole after it or before the first.
TEST(RegionTable, LookupIsExactAtEveryLeafSizeAndLineEdge) {
  const std::size_t max = 40;
  Page mem(PROT_NONE, 2 * max + 1);
  std::vector<Region> regions;
  for (std::size_t n = 1; n <= max; ++n) {
    auto r = adopt_region(mem.get() + (2 * n - 1) * kPage, kPage, on_signals("edge", Policy::guard));
    ASSERT_TRUE(r.ok()) << r.error().message();
    regions.push_back(std::move(r.value()));
    ASSERT_EQ(region::lookup(reinterpret_cast<std::uintptr_t>(mem.get())), nullptr) << n << " regions";
    for (std::size_t i = 1; i <= n; ++i) {
      const auto a = reinterpret_cast<std::uintptr_t>(mem.get() + (2 * i - 1) * kPage);
      auto* first = region::lookup(a);
      auto* last = region::lookup(a + kPage - 1);
      ASSERT_NE(first, nullptr) << n << " regions, region " << i;
      EXPECT_EQ(first->base, a) << n << " regions, region " << i;
      EXPECT_EQ(last, first) << n << " regions, region " << i;
      EXPECT_EQ(region::lookup(a + kPage), nullptr) << n << " regions, the hole after region " << i;
    }
  }
}

// The overlap check finds the one candidate by binary search: every way of overlapping a registered
// region (its start, its end, inside it, around it, across two) is refused, touching it is not, in a
// table of many leaves.
TEST(RegionTable, OverlapIsFoundInEveryPositionAcrossLeaves) {
  const std::size_t n = 600;  // regions of 2 pages with a 1-page hole after each: 5 leaves
  Page mem(PROT_NONE, n * 3 + 3);
  char* base = mem.get();
  std::vector<Region> regions;
  for (std::size_t i = 0; i < n; ++i) {
    auto r = adopt_region(base + 3 * i * kPage, 2 * kPage, on_signals("r", Policy::guard));
    ASSERT_TRUE(r.ok()) << r.error().message();
    regions.push_back(std::move(r.value()));
  }
  for (std::size_t i : {std::size_t{0}, std::size_t{1}, std::size_t{127}, std::size_t{128}, std::size_t{300}, n - 1}) {
    char* r = base + 3 * i * kPage;  // region i: [r, r + 2 pages), hole at r + 2 pages
    auto refused = [&](char* p, std::size_t pages) {
      auto x = adopt_region(p, pages * kPage, on_signals("x", Policy::guard));
      return !x.ok() && x.error().code() == Errc::already_exists;
    };
    EXPECT_TRUE(refused(r, 1)) << "its first page, region " << i;
    EXPECT_TRUE(refused(r + kPage, 1)) << "its last page, region " << i;
    EXPECT_TRUE(refused(r + kPage, 2)) << "its end and the hole, region " << i;
    EXPECT_TRUE(refused(r, 3)) << "all of it and the hole, region " << i;
    if (i + 1 < n) {
      EXPECT_TRUE(refused(r + 2 * kPage, 2)) << "the hole and the next region, after " << i;
    }
    if (i > 0) {
      EXPECT_TRUE(refused(r - kPage, 2)) << "the hole before and its start, region " << i;
    }
    auto hole = adopt_region(r + 2 * kPage, kPage, on_signals("hole", Policy::guard));
    EXPECT_TRUE(hole.ok()) << "the hole after region " << i << ": " << hole.error().message();
  }
}

// Registrations and removals that keep a leaf leave its separator alone (no new top array): after the
// first entries of a leaf are gone its separator lies below its first base, and the search and the
// overlap check must still find every region. A band of regions after region `a` is removed one by one
// from its start; after each removal, region a and the first region after the band are found by lookup
// and by the overlap check, and a range from inside region a up to the band's end overlaps region a
// (the candidate then lies in the leaf before the one the separators point to).
TEST(RegionTable, StaleSeparatorsStillFindEveryRegion) {
  const std::size_t n = 600, a = 50;
  Page mem(PROT_NONE, n * 3 + 6);
  char* below = mem.get();  // three pages below every region
  char* base = below + 3 * kPage;
  // The options are built once (GCC 12 at -O3 warns falsely about std::string inside such loops).
  const RegionOptions each = on_signals("stale-separators", Policy::guard);
  const RegionOptions probe = on_signals("stale-separators-probe", Policy::guard);
  std::vector<Region> regions;
  for (std::size_t i = 0; i < n; ++i) {
    auto r = adopt_region(base + 3 * i * kPage, 2 * kPage, each);
    ASSERT_TRUE(r.ok()) << r.error().message();
    regions.push_back(std::move(r.value()));
  }
  auto found = [](const char* p) {
    const auto addr = reinterpret_cast<std::uintptr_t>(p);
    return internal::bench_lookup_batch(&addr, 1, 0, 1) != 0;
  };
  auto refused = [&](char* p, std::size_t pages) {
    auto x = adopt_region(p, pages * kPage, probe);
    return !x.ok() && x.error().code() == Errc::already_exists;
  };
  char* ra = base + 3 * a * kPage;
  for (std::size_t b = a + 2; b < 400; ++b) {
    ASSERT_TRUE(regions[b - 1].reset().ok());  // the band is now (a, b)
    char* rb = base + 3 * b * kPage;
    ASSERT_TRUE(found(ra + kPage) && found(rb) && found(rb + kPage)) << "band end " << b;
    ASSERT_FALSE(found(rb - kPage)) << "the hole before region " << b;
    ASSERT_FALSE(found(rb - 3 * kPage)) << "removed region " << b - 1;
    ASSERT_TRUE(refused(rb, 1)) << "region " << b;
    ASSERT_TRUE(refused(ra + kPage, static_cast<std::size_t>(rb - ra) / kPage - 1)) << "from inside region a to " << b;
    auto band = adopt_region(ra + 2 * kPage, static_cast<std::size_t>(rb - ra) - 2 * kPage, probe);
    ASSERT_TRUE(band.ok()) << "the band before region " << b << ": " << band.error().message();
  }
  // A region below the first separator lives in leaf 0: found, overlapped, and removed again.
  auto low = adopt_region(below, kPage, probe);
  ASSERT_TRUE(low.ok()) << low.error().message();
  EXPECT_TRUE(found(below));
  EXPECT_TRUE(refused(below, 1));
  EXPECT_TRUE(low->reset().ok());
  EXPECT_FALSE(found(below));
  EXPECT_TRUE(found(base));
}

// The per-thread memory of the last region found is only as good as the table version it came from: a
// thread that faulted in one region, which is then unregistered and replaced by another over the same
// pages, reaches the new region's barrier, not the old one's.
TEST(RegionTable, ReplacedRegionIsNotFoundThroughTheLastHit) {
  ChildResult r = run_child([] {
    static std::atomic<int> first{0}, second{0}, third{0};
    // A barrier that counts in the counter its data points to and lets the access through.
    auto counting = [](std::atomic<int>* counter) {
      RegionOptions o = on_signals("b", Policy::barrier);
      o.perms = perm_read | perm_write;
      o.barrier = [](FaultContext&, const RegionInfo& i, void* data) {
        ++*static_cast<std::atomic<int>*>(data);
        mprotect(reinterpret_cast<void*>(i.base), i.size, PROT_READ | PROT_WRITE);
        return Disposition::resolved;
      };
      o.barrier_data = counter;
      return o;
    };
    Page mem(PROT_READ | PROT_WRITE, 1);
    auto touch = [&](char v) {
      mprotect(mem.get(), kPage, PROT_NONE);
      *reinterpret_cast<volatile char*>(mem.get()) = v;
    };
    auto a = adopt_region(mem.get(), kPage, counting(&first));
    if (!a.ok()) _exit(2);
    touch(1);
    if (first.load() != 1) _exit(3);
    if (!a->reset().ok()) _exit(4);
    // Another region, elsewhere, most likely takes the old region's freed record: a stale shortcut would
    // then reach this one's barrier (or a freed record), not the new region's.
    Page elsewhere(PROT_READ | PROT_WRITE, 1);
    auto c = adopt_region(elsewhere.get(), kPage, counting(&third));
    if (!c.ok()) _exit(7);
    auto b = adopt_region(mem.get(), kPage, counting(&second));
    if (!b.ok()) _exit(5);
    touch(2);
    if (first.load() != 1 || second.load() != 1 || third.load() != 0) _exit(6);
    _exit(0);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// Threads fault on the same zero-fill pages while another thread registers and unregisters regions.
TEST(Stress, FaultsWhileRegionsComeAndGo) {
  ChildResult r = run_child([] {
    const std::size_t pages = 256;
    RegionOptions o = on_signals("shared", Policy::zero_fill);
    auto reg = must_reserve(pages * kPage, o);
    char* p = static_cast<char*>(reg.data());
    std::atomic<bool> stop{false};
    std::atomic<long> bad{0};
    std::thread churn([&] {
      while (!stop.load()) {
        auto tmp = reserve_region(kPage, on_signals("churn", Policy::guard));
        if (!tmp.ok()) bad++;
      }
    });
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t) {
      ts.emplace_back([&, t] {
        for (std::size_t i = 0; i < pages; ++i) {
          std::size_t pg = (i * 7 + static_cast<std::size_t>(t) * 31) % pages;
          volatile char* c = p + pg * kPage + static_cast<std::size_t>(t);
          if (*c != 0) bad++;
          *c = static_cast<char>(t + 1);
          if (*c != static_cast<char>(t + 1)) bad++;
        }
      });
    }
    for (auto& t : ts) t.join();
    stop = true;
    churn.join();
    if (bad.load() != 0) _exit(1);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// Two threads per core read across thousands of provider regions while another thread registers and
// unregisters regions; every byte must be what the provider wrote.
TEST(Stress, ThousandsOfFilledRegionsWhileTheTableChanges) {
  ChildResult r = run_child([] {
    constexpr std::size_t kRegions = 2000, kPages = 4;
    std::vector<Region> regions;
    regions.reserve(kRegions);
    for (std::size_t k = 0; k < kRegions; ++k) {
      RegionOptions o = filled_on_signals("stress", Policy::provider, fill_pattern, reinterpret_cast<void*>(k + 1));
      o.fault_around = 1 + k % 3;
      auto reg = reserve_region(kPages * kPage, o);
      if (!reg.ok()) {
        std::fprintf(stderr, "%s\n", reg.error().message().c_str());
        _exit(90);
      }
      regions.push_back(std::move(*reg));
    }
    std::atomic<bool> stop{false};
    std::atomic<long> bad{0}, churned{0};
    std::thread churn([&] {
      while (!stop.load()) {
        auto tmp = reserve_region(2 * kPage, filled_on_signals("churn", Policy::provider, fill_pattern));
        if (!tmp.ok()) bad++;
        else if (!check_pattern(tmp->data(), 0, 0, 2 * kPage)) bad++;
        churned++;
      }
    });
    const unsigned n = 2 * std::max(1u, std::thread::hardware_concurrency());
    std::vector<std::thread> readers;
    for (unsigned t = 0; t < n; ++t) {
      readers.emplace_back([&, t] {
        std::uint64_t x = 88172645463325252ull + t;
        for (int i = 0; i < 20000; ++i) {
          x ^= x << 13;
          x ^= x >> 7;
          x ^= x << 17;
          const std::size_t k = x % kRegions, off = (x >> 20) % (kPages * kPage / 8) * 8;
          const auto* w = static_cast<const volatile std::uint64_t*>(regions[k].data());
          if (w[off / 8] != pattern(k + 1, off)) bad++;
        }
      });
    }
    for (auto& t : readers) t.join();
    stop = true;
    churn.join();
    if (bad.load() != 0) _exit(1);
    if (churned.load() == 0) _exit(2);
  }, 120);
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

}  // namespace
}  // namespace faultline
