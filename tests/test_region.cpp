// tests/test_region.cpp: regions on the mprotect+signal backend: the table, each policy, permissions.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "child.hpp"
#include "faultline/region.hpp"
#include "faultline/report.hpp"
#include "region/table.hpp"

namespace faultline {
namespace {

using test::ChildResult;
using test::Page;
using test::run_child;
using test::Shared;

const std::size_t kPage = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));

RegionOptions opts(const char* name, Policy p, unsigned perms = perm_read | perm_write) {
  RegionOptions o;
  o.backend = Backend::signals;  // this suite tests the signal backend
  o.name = name;
  o.policy = p;
  o.perms = perms;
  return o;
}

TEST(RegionTable, BadRegistrationsGetClearErrors) {
  EXPECT_EQ(reserve_region(0, opts("z", Policy::zero_fill)).error().code(), Errc::invalid_argument);
  auto mis = reserve_region(kPage + 1, opts("m", Policy::zero_fill));
  ASSERT_FALSE(mis.ok());
  EXPECT_NE(mis.error().message().find("multiple of the page size"), std::string::npos);
  EXPECT_EQ(reserve_region(kPage, opts("b", Policy::barrier)).error().code(), Errc::invalid_argument);
  RegionOptions fa = opts("fa", Policy::zero_fill);
  fa.fault_around = 0;
  EXPECT_EQ(reserve_region(kPage, fa).error().code(), Errc::invalid_argument);
  EXPECT_EQ(reserve_region(kPage, opts("np", Policy::zero_fill, perm_none)).error().code(), Errc::invalid_argument);
  EXPECT_EQ(reserve_region(kPage, opts("tw", Policy::track_dirty, perm_read)).error().code(), Errc::invalid_argument);
  EXPECT_EQ(adopt_region(nullptr, kPage, opts("n", Policy::guard)).error().code(), Errc::invalid_argument);

  Page mem(PROT_READ | PROT_WRITE, 4);
  EXPECT_EQ(adopt_region(mem.get() + 1, kPage, opts("a", Policy::guard)).error().code(), Errc::invalid_argument);
  auto a = adopt_region(mem.get(), 2 * kPage, opts("first", Policy::guard));
  ASSERT_TRUE(a.ok()) << a.error().message();
  auto overlap = adopt_region(mem.get() + kPage, 2 * kPage, opts("second", Policy::guard));
  ASSERT_FALSE(overlap.ok());
  EXPECT_EQ(overlap.error().code(), Errc::already_exists);
  EXPECT_NE(overlap.error().message().find("overlaps region 'first'"), std::string::npos) << overlap.error().message();
  // Unmapped memory.
  void* hole = mmap(nullptr, 2 * kPage, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  munmap(static_cast<char*>(hole) + kPage, kPage);
  auto unmapped = adopt_region(hole, 2 * kPage, opts("hole", Policy::guard));
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
    auto r = adopt_region(mem.get() + 2 * i * kPage, kPage, opts("r", Policy::guard));
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

TEST(ZeroFill, PagesAppearZeroedWithFaultAround) {
  ChildResult r = run_child([] {
    RegionOptions o = opts("heap", Policy::zero_fill);
    o.fault_around = 4;
    auto reg = reserve_region(16 * kPage, o);
    if (!reg.ok()) _exit(90);
    char* p = static_cast<char*>(reg->data());
    const auto before = counters(SIGSEGV).resolved;
    for (std::size_t i = 0; i < 16; ++i) {
      if (p[i * kPage + 5] != 0) _exit(1);
      p[i * kPage + 5] = static_cast<char>(i + 1);
    }
    for (std::size_t i = 0; i < 16; ++i) {
      if (p[i * kPage + 5] != static_cast<char>(i + 1)) _exit(2);
    }
    // 16 pages, 4 per fault.
    if (counters(SIGSEGV).resolved - before != 4) _exit(3);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

TEST(Guard, AccessIsReportedWithTheRegionName) {
  ChildResult r = run_child([] {
    if (!report::enable().ok()) _exit(90);
    auto reg = reserve_region(2 * kPage, opts("red-zone", Policy::guard));
    if (!reg.ok()) _exit(91);
    static_cast<volatile char*>(reg->data())[kPage + 1] = 1;
  });
  EXPECT_TRUE(r.signaled() && r.signal() == SIGSEGV) << r;
  EXPECT_NE(r.output.find("region    'red-zone'"), std::string::npos) << r;
  EXPECT_NE(r.output.find("policy guard"), std::string::npos) << r;
  EXPECT_NE(r.output.find("page 1"), std::string::npos) << r;
}

TEST(Permissions, WriteIntoReadOnlyRegionIsNotResolved) {
  ChildResult r = run_child([] {
    if (!report::enable().ok()) _exit(90);
    auto reg = reserve_region(kPage, opts("rodata", Policy::zero_fill, perm_read));
    if (!reg.ok()) _exit(91);
    auto* p = static_cast<volatile char*>(reg->data());
    if (p[10] != 0) _exit(1);  // reading is allowed
    p[10] = 1;                 // writing is not
    _exit(2);
  });
  EXPECT_TRUE(r.signaled() && r.signal() == SIGSEGV) << r;
  EXPECT_NE(r.output.find("'rodata'"), std::string::npos) << r;
  EXPECT_NE(r.output.find("perms r--"), std::string::npos) << r;
  EXPECT_NE(r.output.find("access write"), std::string::npos) << r;
}

TEST(TrackWrites, CollectReturnsWrittenPagesAndReArms) {
  struct Out {
    std::size_t first[8], second[8], n1, n2, n3;
  };
  Shared<Out> out;
  ChildResult r = run_child([&] {
    auto reg = reserve_region(8 * kPage, opts("snap", Policy::track_dirty));
    if (!reg.ok()) _exit(90);
    char* p = static_cast<char*>(reg->data());
    if (p[3 * kPage] != 0) _exit(1);  // reads do not fault or mark
    p[1 * kPage] = 1;
    p[5 * kPage + 9] = 2;
    p[6 * kPage] = 3;
    p[6 * kPage + 1] = 4;  // same page again: no second fault
    auto d1 = reg->collect_dirty();
    if (!d1.ok()) _exit(2);
    out->n1 = d1->size();
    std::copy(d1->begin(), d1->end(), out->first);
    p[5 * kPage] = 7;
    auto d2 = reg->collect_dirty();
    out->n2 = d2->size();
    std::copy(d2->begin(), d2->end(), out->second);
    out->n3 = reg->collect_dirty()->size();
    if (p[5 * kPage + 9] != 2 || p[6 * kPage + 1] != 4) _exit(3);
    RegionOptions z = opts("z", Policy::zero_fill);
    auto other = reserve_region(kPage, z);
    if (other->collect_dirty().ok()) _exit(4);
  });
  ASSERT_TRUE(r.exited() && r.exit_code() == 0) << r;
  ASSERT_EQ(out->n1, 3u);
  EXPECT_EQ(out->first[0], 1u);
  EXPECT_EQ(out->first[1], 5u);
  EXPECT_EQ(out->first[2], 6u);
  ASSERT_EQ(out->n2, 1u);
  EXPECT_EQ(out->second[0], 5u);
  EXPECT_EQ(out->n3, 0u);
}

// The barrier of a relocating collector: old space is PROT_NONE; the barrier looks the object up in a
// forwarding table and rewrites the register that held the address, so the load re-executes against the
// object's new copy.
struct Forwarding {
  std::uintptr_t old_base, new_base;
  std::size_t size;
  std::atomic<int> healed{0};
};
Disposition forward_barrier(FaultContext& ctx, const RegionInfo& region, void* data) {
  auto* fw = static_cast<Forwarding*>(data);
  const std::uintptr_t a = ctx.address();
  if (a < region.base || a >= region.base + region.size) return Disposition::declined;
  const std::intptr_t delta = static_cast<std::intptr_t>(fw->new_base - fw->old_base);
  // The faulting load is "mov (%rdi), %rax": rdi holds the address.
  if (ctx.reg(Reg::rdi) != a) return Disposition::declined;
  ctx.set_reg(Reg::rdi, static_cast<std::uint64_t>(static_cast<std::intptr_t>(a) + delta));
  fw->healed++;
  return Disposition::resolved;
}

TEST(Barrier, ForwardingTableHealsTheRegister) {
  Shared<Forwarding> fw;
  ChildResult r = run_child([&] {
    Page new_space(PROT_READ | PROT_WRITE);
    std::uint64_t* copy = reinterpret_cast<std::uint64_t*>(new_space.get());
    copy[3] = 0x5eed5eed5eed5eedull;  // the relocated object's field
    RegionOptions o = opts("old-space", Policy::barrier);
    o.barrier = forward_barrier;
    o.barrier_data = &*fw;
    auto old_space = reserve_region(kPage, o);
    if (!old_space.ok()) _exit(90);
    fw->old_base = reinterpret_cast<std::uintptr_t>(old_space->data());
    fw->new_base = reinterpret_cast<std::uintptr_t>(new_space.get());
    std::uint64_t value;
    const std::uint64_t* stale = static_cast<const std::uint64_t*>(old_space->data()) + 3;
    __asm__ volatile(
        "mov %[p], %%rdi\n"
        ".byte 0x48, 0x8b, 0x07\n"  // mov (%rdi), %rax
        "mov %%rax, %[v]\n"
        : [v] "=m"(value)
        : [p] "r"(stale)
        : "rax", "rdi", "memory");
    if (value != 0x5eed5eed5eed5eedull) _exit(1);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
  EXPECT_EQ(fw->healed.load(), 1);
}

TEST(Prefault, SystemCallsSeeEfaultUnlessPrefaulted) {
  ChildResult r = run_child([] {
    auto reg = reserve_region(4 * kPage, opts("buf", Policy::zero_fill));
    if (!reg.ok()) _exit(90);
    int fd = open("/dev/zero", O_RDONLY);
    char* p = static_cast<char*>(reg->data());
    errno = 0;
    if (read(fd, p, 2 * kPage) != -1 || errno != EFAULT) _exit(1);  // the kernel does not fault for us
    if (!prefault(p, 2 * kPage, Access::write).ok()) _exit(2);
    if (read(fd, p, 2 * kPage) != static_cast<ssize_t>(2 * kPage)) _exit(3);
    auto ro = reserve_region(kPage, opts("ro", Policy::zero_fill, perm_read));
    auto bad = prefault(ro->data(), 10, Access::write);
    if (bad.ok() || bad.error().code() != Errc::invalid_argument) _exit(4);
    if (!prefault(ro->data(), 10, Access::read).ok()) _exit(5);
    if (prefault(nullptr, 1, Access::read).ok()) _exit(6);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// Threads fault on the same zero-fill pages while another thread registers and unregisters regions.
TEST(Stress, FaultsWhileRegionsComeAndGo) {
  ChildResult r = run_child([] {
    const std::size_t pages = 256;
    RegionOptions o = opts("shared", Policy::zero_fill);
    auto reg = reserve_region(pages * kPage, o);
    if (!reg.ok()) _exit(90);
    char* p = static_cast<char*>(reg->data());
    std::atomic<bool> stop{false};
    std::atomic<long> bad{0};
    std::thread churn([&] {
      while (!stop.load()) {
        auto tmp = reserve_region(kPage, opts("churn", Policy::guard));
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

}  // namespace
}  // namespace faultline
