// tests/test_fill.cpp: provider and pager regions, failed fills, protection batches, the VM fault
// dispatcher scenario and a stress test across thousands of filled regions.
#include <gtest/gtest.h>
#include <setjmp.h>
#include <sys/syscall.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "child.hpp"
#include "faultline/region.hpp"
#include "faultline/report.hpp"
#include "backend/signals/signals.hpp"
#include "region/table.hpp"

namespace faultline {
namespace {

using test::ChildResult;
using test::run_child;
using test::Shared;

const std::size_t kPage = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));

long tid() { return syscall(SYS_gettid); }

// The word a provider writes at byte offset `off` of region `tag`.
std::uint64_t pattern(std::uint64_t tag, std::size_t off) { return (tag << 40) ^ (off / 8) ^ 0x5a5a; }

FillStatus fill_pattern(const FillRequest& req, void* data) {
  const auto tag = reinterpret_cast<std::uintptr_t>(data);
  auto* w = reinterpret_cast<std::uint64_t*>(req.dest);
  for (std::size_t i = 0; i < req.length / 8; ++i) w[i] = pattern(tag, req.offset + i * 8);
  return {};
}

bool check_pattern(const void* base, std::uint64_t tag, std::size_t off, std::size_t len) {
  auto* w = static_cast<const volatile std::uint64_t*>(base);
  for (std::size_t o = off; o < off + len; o += 8) {
    if (w[o / 8] != pattern(tag, o)) return false;
  }
  return true;
}

RegionOptions filled(const char* name, Policy p, FillFn fn, void* data = nullptr) {
  RegionOptions o;
  o.backend = Backend::signals;  // this suite tests the signal backend
  o.name = name;
  o.policy = p;
  o.fill = fn;
  o.fill_data = data;
  return o;
}

// What a fill function saw.
struct Seen {
  std::atomic<int> calls{0};
  std::atomic<std::size_t> offset{0}, length{0};
  std::atomic<int> access{0};
  std::atomic<std::uintptr_t> pc{0};
  std::atomic<long> tid{0};
  char name[64] = {};
};
Seen g_seen;

FillStatus recording_fill(const FillRequest& req, void* data) {
  g_seen.calls++;
  g_seen.offset = req.offset;
  g_seen.length = req.length;
  g_seen.access = static_cast<int>(req.access);
  g_seen.pc = req.pc;
  g_seen.tid = req.tid;
  std::memcpy(g_seen.name, req.region.name, std::strlen(req.region.name) + 1);
  return fill_pattern(req, data);
}

TEST(Provider, FillsOnFirstTouchWithTheRequestDescribed) {
  ChildResult r = run_child([] {
    RegionOptions o = filled("snapshot", Policy::provider, recording_fill, reinterpret_cast<void*>(7));
    o.fault_around = 3;
    auto reg = reserve_region(8 * kPage, o);
    if (!reg.ok()) _exit(90);
    auto* p = static_cast<char*>(reg->data());
    if (!check_pattern(p, 7, 2 * kPage, kPage)) _exit(1);  // a read of page 2 fills pages 2..4
    if (g_seen.calls != 1 || g_seen.offset != 2 * kPage || g_seen.length != 3 * kPage) _exit(2);
    if (g_seen.access != static_cast<int>(Access::read) || g_seen.tid != tid() || g_seen.pc == 0) _exit(3);
    if (std::strcmp(g_seen.name, "snapshot") != 0) _exit(4);
    if (!check_pattern(p, 7, 3 * kPage, 2 * kPage) || g_seen.calls != 1) _exit(5);  // already there
    p[7 * kPage] = 1;  // a write of the last page: the run is cut at the region's end
    if (g_seen.calls != 2 || g_seen.length != kPage || g_seen.access != static_cast<int>(Access::write)) _exit(6);
    if (!check_pattern(p, 7, 7 * kPage + 8, kPage - 8)) _exit(7);
    // The run stops at a page that is already filled.
    if (!check_pattern(p, 7, 0, 2 * kPage) || g_seen.calls != 3 || g_seen.length != 2 * kPage) _exit(8);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// Thread A's fill waits until thread B sleeps on the same page, so both certainly fault on it at once.
struct RaceState {
  backend::signals::SignalRegion* impl = nullptr;
  std::atomic<int> calls{0};
};
RaceState g_race;

FillStatus waiting_fill(const FillRequest& req, void* data) {
  g_race.calls++;
  const std::size_t idx = req.offset / kPage;
  for (long spin = 0; (g_race.impl->pstate[idx].load() & backend::signals::kPageWaiters) == 0; ++spin) {
    if (spin > 2'000'000'000L) return FillStatus{EIO, "the second thread never waited"};
  }
  return fill_pattern(req, data);
}

TEST(Provider, TwoThreadsOnOnePageGetOneFill) {
  ChildResult r = run_child([] {
    auto reg = reserve_region(kPage, filled("shared-page", Policy::provider, waiting_fill, reinterpret_cast<void*>(3)));
    if (!reg.ok()) _exit(90);
    g_race.impl = static_cast<backend::signals::SignalRegion*>(region::lookup(reinterpret_cast<std::uintptr_t>(reg->data())));
    const void* p = reg->data();
    std::atomic<int> ok{0};
    std::thread a([&] { ok += check_pattern(p, 3, 0, kPage); });
    std::thread b([&] { ok += check_pattern(p, 3, 0, kPage); });
    a.join();
    b.join();
    if (ok != 2) _exit(1);
    if (g_race.calls != 1) _exit(2);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

FillStatus failing_fill(const FillRequest&, void*) { return FillStatus{EIO, "disk on fire"}; }

TEST(Provider, FailureEndsInSigbusWithReport) {
  ChildResult r = run_child([] {
    if (!report::enable().ok()) _exit(90);
    auto reg = reserve_region(4 * kPage, filled("image", Policy::provider, failing_fill));
    if (!reg.ok()) _exit(91);
    (void)static_cast<volatile char*>(reg->data())[2 * kPage + 9];
    _exit(1);  // never a zero page
  });
  EXPECT_TRUE(r.signaled() && r.signal() == SIGBUS) << r;
  EXPECT_NE(r.output.find("SIGBUS (BUS_ADRERR)"), std::string::npos) << r;
  EXPECT_NE(r.output.find("cause     provider for region 'image' failed on page 2: EIO (errno 5): disk on fire"),
            std::string::npos)
      << r;
  EXPECT_NE(r.output.find("region    'image'"), std::string::npos) << r;
  EXPECT_NE(r.output.find("policy provider"), std::string::npos) << r;
}

TEST(Provider, FailureWithoutReportStillSaysWhy) {
  ChildResult r = run_child([] {
    auto reg = reserve_region(kPage, filled("quiet", Policy::provider, failing_fill));
    if (!reg.ok()) _exit(91);
    (void)static_cast<volatile char*>(reg->data())[0];
    _exit(1);
  });
  EXPECT_TRUE(r.signaled() && r.signal() == SIGBUS) << r;
  EXPECT_NE(r.output.find("provider for region 'quiet' failed on page 0: EIO"), std::string::npos) << r;
}

// A program's own SIGBUS handler sees the failure as the kernel would report it; the page stays unfilled
// and the next access fills it.
Shared<siginfo_t>* g_bus_info;
sigjmp_buf g_jmp;
std::atomic<int> g_fail_first{1};

FillStatus flaky_fill(const FillRequest& req, void* data) {
  if (g_fail_first.exchange(0) != 0) return FillStatus{EAGAIN, nullptr};
  return fill_pattern(req, data);
}

TEST(Provider, FailureReachesThePreviousSigbusHandlerThenRetries) {
  Shared<siginfo_t> info;
  g_bus_info = &info;
  ChildResult r = run_child([] {
    struct sigaction sa {};
    sa.sa_sigaction = [](int, siginfo_t* si, void*) {
      **g_bus_info = *si;
      siglongjmp(g_jmp, 1);
    };
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGBUS, &sa, nullptr);
    auto reg = reserve_region(2 * kPage, filled("retry", Policy::provider, flaky_fill, reinterpret_cast<void*>(9)));
    if (!reg.ok()) _exit(90);
    auto* p = static_cast<volatile char*>(reg->data());
    if (sigsetjmp(g_jmp, 1) == 0) {
      (void)p[kPage + 16];
      _exit(1);
    }
    leave_handler();
    if ((*g_bus_info)->si_code != BUS_ADRERR) _exit(2);
    if ((*g_bus_info)->si_addr != p + kPage + 16) _exit(3);
    if (!check_pattern(const_cast<char*>(p), 9, kPage, kPage)) _exit(4);  // filled on the second try
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

TEST(Provider, BadOptionsGetClearErrors) {
  auto no_fn = reserve_region(kPage, filled("a", Policy::provider, nullptr));
  ASSERT_FALSE(no_fn.ok());
  EXPECT_NE(no_fn.error().message().find("needs a store or a fill function"), std::string::npos);
  auto fn_elsewhere = reserve_region(kPage, filled("b", Policy::zero_fill, fill_pattern));
  ASSERT_FALSE(fn_elsewhere.ok());
  EXPECT_EQ(fn_elsewhere.error().code(), Errc::invalid_argument);
  auto no_pager = reserve_region(kPage, filled("c", Policy::pager, fill_pattern));
  ASSERT_FALSE(no_pager.ok());
  EXPECT_NE(no_pager.error().message().find("needs a started Pager"), std::string::npos);
  RegionOptions bad_timeout = filled("d", Policy::provider, fill_pattern);
  bad_timeout.fill_timeout = std::chrono::milliseconds(0);
  EXPECT_FALSE(reserve_region(kPage, bad_timeout).ok());
  test::Page mine(PROT_READ | PROT_WRITE);
  auto adopted = adopt_region(mine.get(), kPage, filled("e", Policy::provider, fill_pattern));
  ASSERT_FALSE(adopted.ok());
  EXPECT_EQ(adopted.error().code(), Errc::unsupported);
  EXPECT_FALSE(Pager::start(PagerOptions{"p", 0}).ok());
}

// The pager's fill function runs on the pager thread as ordinary code (it allocates here).
FillStatus pager_fill(const FillRequest& req, void* data) {
  std::vector<std::uint64_t> buf(req.length / 8);
  const auto tag = reinterpret_cast<std::uintptr_t>(data);
  for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = pattern(tag, req.offset + i * 8);
  std::memcpy(req.dest, buf.data(), req.length);
  g_seen.calls++;
  g_seen.offset = req.offset;
  g_seen.access = static_cast<int>(req.access);
  g_seen.pc = req.pc;
  g_seen.tid = tid();  // the pager thread's own id
  std::memcpy(g_seen.name, req.region.name, std::strlen(req.region.name) + 1);
  return {};
}

TEST(Pager, FaultIsServedByThePagerThread) {
  ChildResult r = run_child([] {
    auto pager = Pager::start(PagerOptions{"test-pager", 1});
    if (!pager.ok()) _exit(90);
    RegionOptions o = filled("paged", Policy::pager, pager_fill, reinterpret_cast<void*>(5));
    o.pager = *pager;
    auto reg = reserve_region(4 * kPage, o);
    if (!reg.ok()) _exit(91);
    auto* p = static_cast<char*>(reg->data());
    p[kPage + 8] = 42;  // a write: the pager fills, then the write lands
    if (g_seen.calls != 1 || g_seen.offset != kPage) _exit(1);
    if (g_seen.access != static_cast<int>(Access::write) || g_seen.pc == 0) _exit(2);
    if (g_seen.tid == tid() || g_seen.tid == 0) _exit(3);  // not the faulting thread
    if (std::strcmp(g_seen.name, "paged") != 0) _exit(4);
    if (p[kPage + 8] != 42 || !check_pattern(p, 5, kPage + 16, kPage - 16)) _exit(5);
    if (!check_pattern(p, 5, 0, kPage) || g_seen.calls != 2 || g_seen.access != static_cast<int>(Access::read)) {
      _exit(6);
    }
    if (pager->stats().requests != 2 || pager->stats().failed != 0) _exit(7);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

FillStatus pager_refuses(const FillRequest&, void*) { return FillStatus{ENOENT, "no such object in the store"}; }

TEST(Pager, FailureEndsInSigbusWithReport) {
  ChildResult r = run_child([] {
    if (!report::enable().ok()) _exit(90);
    auto pager = Pager::start();
    if (!pager.ok()) _exit(90);
    RegionOptions o = filled("remote", Policy::pager, pager_refuses);
    o.pager = *pager;
    auto reg = reserve_region(2 * kPage, o);
    if (!reg.ok()) _exit(91);
    static_cast<volatile char*>(reg->data())[kPage] = 1;
    _exit(1);
  });
  EXPECT_TRUE(r.signaled() && r.signal() == SIGBUS) << r;
  EXPECT_NE(r.output.find("cause     pager for region 'remote' failed on page 1: ENOENT (errno 2): no such "
                          "object in the store"),
            std::string::npos)
      << r;
  EXPECT_NE(r.output.find("policy pager"), std::string::npos) << r;
}

std::atomic<bool> g_release{false};
FillStatus stuck_fill(const FillRequest& req, void* data) {
  while (!g_release.load()) std::this_thread::yield();
  return fill_pattern(req, data);
}

TEST(Pager, NoAnswerWithinTheTimeoutEndsInSigbus) {
  ChildResult r = run_child([] {
    auto pager = Pager::start();
    if (!pager.ok()) _exit(90);
    RegionOptions o = filled("slow", Policy::pager, stuck_fill);
    o.pager = *pager;
    o.fill_timeout = std::chrono::milliseconds(50);
    auto reg = reserve_region(kPage, o);
    if (!reg.ok()) _exit(91);
    (void)static_cast<volatile char*>(reg->data())[0];
    _exit(1);
  });
  EXPECT_TRUE(r.signaled() && r.signal() == SIGBUS) << r;
  EXPECT_NE(r.output.find("pager for region 'slow' failed on page 0: ETIMEDOUT"), std::string::npos) << r;
}

std::atomic<char*> g_own_region{nullptr};
FillStatus self_touching_fill(const FillRequest& req, void* data) {
  if (req.offset == 0) (void)static_cast<volatile char*>(g_own_region.load())[kPage];  // another unfilled page
  return fill_pattern(req, data);
}

TEST(Pager, PagerThreadTouchingItsOwnRegionFailsInsteadOfDeadlocking) {
  ChildResult r = run_child([] {
    auto pager = Pager::start();
    if (!pager.ok()) _exit(90);
    RegionOptions o = filled("loop", Policy::pager, self_touching_fill);
    o.pager = *pager;
    auto reg = reserve_region(2 * kPage, o);
    if (!reg.ok()) _exit(91);
    g_own_region = static_cast<char*>(reg->data());
    (void)static_cast<volatile char*>(reg->data())[0];
    _exit(1);
  });
  EXPECT_TRUE(r.signaled() && r.signal() == SIGBUS) << r;
  EXPECT_NE(r.output.find("pager for region 'loop' failed on page 1: EDEADLK"), std::string::npos) << r;
}

// A faulting thread that waits for a slow pager does not hold up region registration meanwhile.
std::atomic<int> g_fill_started{0};
std::atomic<int> g_fill_release{0};
FillStatus gated_fill(const FillRequest& req, void* data) {
  g_fill_started = 1;
  for (long spin = 0; g_fill_release.load() == 0; ++spin) {
    if (spin > 200'000'000L) return FillStatus{EIO, "never released"};
    std::this_thread::yield();
  }
  return fill_pattern(req, data);
}

TEST(Pager, RegistrationGoesOnWhileAFaultWaitsForThePager) {
  ChildResult r = run_child([] {
    auto pager = Pager::start();
    if (!pager.ok()) _exit(90);
    RegionOptions o = filled("gated", Policy::pager, gated_fill, reinterpret_cast<void*>(12));
    o.pager = *pager;
    auto reg = reserve_region(kPage, o);
    if (!reg.ok()) _exit(91);
    std::atomic<bool> same{false};
    std::thread faulting([&] { same = check_pattern(reg->data(), 12, 0, kPage); });
    while (g_fill_started.load() == 0) std::this_thread::yield();
    RegionOptions g;
    g.backend = Backend::signals;  // this suite tests the signal backend
    g.name = "meanwhile";
    g.policy = Policy::guard;
    g.perms = perm_none;
    auto other = reserve_region(kPage, g);  // would wait for the dispatch (and time out) if it held the epoch
    if (!other.ok()) {
      std::fprintf(stderr, "%s\n", other.error().message().c_str());
      _exit(1);
    }
    if (!other->reset().ok()) _exit(2);
    g_fill_release = 1;
    faulting.join();
    if (!same) _exit(3);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

TEST(Protect, LoweredPagesAreResolvedAgainWithTheirContents) {
  ChildResult r = run_child([] {
    RegionOptions o;
    o.backend = Backend::signals;  // this suite tests the signal backend
    o.name = "heap";
    auto reg = reserve_region(4 * kPage, o);
    if (!reg.ok()) _exit(90);
    auto* p = static_cast<volatile char*>(reg->data());
    p[kPage] = 11;
    if (!reg->protect(1, 1, perm_none).ok()) _exit(1);
    const auto before = counters(SIGSEGV).resolved;
    if (p[kPage] != 11) _exit(2);
    if (counters(SIGSEGV).resolved - before != 1) _exit(3);
    // Errors: outside the region, permissions it does not have, zero pages.
    if (reg->protect(3, 2, perm_none).ok() || reg->protect(0, 1, perm_exec).ok() || reg->protect(0, 0, 0).ok()) {
      _exit(4);
    }
    auto fil = reserve_region(kPage, filled("f", Policy::provider, fill_pattern));
    if (!fil.ok() || fil->protect(0, 1, perm_read).ok() || !fil->protect(0, 1, perm_none).ok()) _exit(5);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

TEST(Protect, BatchMergesAdjacentChangesAndKeepsOrderOfOverlaps) {
  ChildResult r = run_child([] {
    RegionOptions o;
    o.backend = Backend::signals;  // this suite tests the signal backend
    o.name = "batched";
    auto reg = reserve_region(16 * kPage, o);
    if (!reg.ok()) _exit(90);
    if (!prefault(reg->data(), 16 * kPage, Access::write).ok()) _exit(91);
    ProtectBatch batch;
    for (std::size_t i : {5, 3, 4, 6, 2}) {
      if (!batch.add(*reg, i, 1, perm_read).ok()) _exit(1);
    }
    if (!batch.add(*reg, 10, 2, perm_none).ok()) _exit(2);
    if (batch.add(*reg, 15, 2, perm_none).ok()) _exit(3);  // outside: refused at add()
    auto calls = batch.commit();
    if (!calls.ok() || *calls != 2) _exit(4);  // pages 2..6 in one call, 10..11 in another
    // Overlapping changes: the later wins.
    if (!batch.add(*reg, 0, 4, perm_none).ok() || !batch.add(*reg, 1, 1, perm_read | perm_write).ok()) _exit(5);
    if (!batch.commit().ok()) _exit(6);
    const auto before = counters(SIGSEGV).resolved;
    static_cast<volatile char*>(reg->data())[kPage] = 1;  // no fault: page 1 is writable
    if (counters(SIGSEGV).resolved != before) _exit(7);
    static_cast<volatile char*>(reg->data())[0] = 1;      // faults: page 0 was re-armed
    if (counters(SIGSEGV).resolved != before + 1) _exit(8);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

TEST(Protect, CollectDirtyCanDeferReArming) {
  ChildResult r = run_child([] {
    RegionOptions o;
    o.backend = Backend::signals;  // this suite tests the signal backend
    o.name = "cards";
    o.policy = Policy::track_dirty;
    auto reg = reserve_region(8 * kPage, o);
    if (!reg.ok()) _exit(90);
    auto* p = static_cast<volatile char*>(reg->data());
    for (std::size_t i : {1, 2, 3, 6}) p[i * kPage] = 1;
    ProtectBatch batch;
    auto dirty = reg->collect_dirty(&batch);
    if (!dirty.ok() || *dirty != std::vector<std::size_t>{1, 2, 3, 6}) _exit(1);
    if (batch.pending() != 2) _exit(2);  // runs 1..3 and 6
    p[2 * kPage] = 2;                     // not re-armed yet: not recorded
    auto none = reg->collect_dirty();
    if (!none.ok() || !none->empty()) _exit(3);
    if (!batch.commit().ok()) _exit(4);
    p[2 * kPage] = 3;  // re-armed: recorded
    auto again = reg->collect_dirty();
    if (!again.ok() || *again != std::vector<std::size_t>{2}) _exit(5);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}


TEST(Discard, PagesAreRefilledOrZeroedOnTheNextAccess) {
  ChildResult r = run_child([] {
    g_seen.calls = 0;
    auto fil = reserve_region(4 * kPage, filled("evictable", Policy::provider, recording_fill, reinterpret_cast<void*>(4)));
    if (!fil.ok()) _exit(90);
    auto* p = static_cast<char*>(fil->data());
    p[kPage] = 99;  // fill page 1, then change it
    if (g_seen.calls != 1 || p[kPage] != 99) _exit(1);
    if (!fil->discard(1, 1).ok()) _exit(2);
    if (!check_pattern(p, 4, kPage, kPage) || g_seen.calls != 2) _exit(3);  // refilled: the change is gone
    if (fil->discard(3, 2).ok()) _exit(4);                                   // outside the region

    RegionOptions o;

    o.backend = Backend::signals;  // this suite tests the signal backend
    o.name = "zeroed";
    auto zf = reserve_region(2 * kPage, o);
    if (!zf.ok()) _exit(91);
    auto* z = static_cast<volatile char*>(zf->data());
    z[kPage + 1] = 5;
    if (!zf->discard(0, 2).ok() || z[kPage + 1] != 0) _exit(5);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// The VM fault dispatcher: windows of every kind in one process, each faulted by its own thread, plus a
// fault outside every window and a write into a read-only window, which reach the program's own
// SIGSEGV handler (installed before faultline) with the faulting address.
struct Caught {
  int sig = 0, code = 0;
  void* addr = nullptr;
};
thread_local sigjmp_buf t_jmp;
thread_local Caught t_caught;

void catching_handler(int sig, siginfo_t* si, void*) {
  t_caught = Caught{sig, si->si_code, si->si_addr};
  siglongjmp(t_jmp, 1);
}

// Runs `touch` on this thread; returns what the program's handler caught (sig 0: nothing).
template <class F>
Caught attempt(F touch) {
  t_caught = Caught{};
  if (sigsetjmp(t_jmp, 1) == 0) {
    touch();
  } else {
    leave_handler();
  }
  return t_caught;
}

// Content produced page by page by an initialiser thread; the provider copies a page once it is ready.
struct Image {
  static constexpr std::size_t kPages = 4;
  std::vector<std::uint64_t> words;
  std::atomic<std::size_t> ready_pages{0};
};
Image* g_image;

FillStatus copy_from_image(const FillRequest& req, void*) {
  const std::size_t last = (req.offset + req.length) / kPage;
  for (long spin = 0; g_image->ready_pages.load(std::memory_order_acquire) < last; ++spin) {
    if (spin > 4'000'000'000L) return FillStatus{ETIMEDOUT, "the initialiser thread never got there"};
  }
  std::memcpy(req.dest, reinterpret_cast<const char*>(g_image->words.data()) + req.offset, req.length);
  return {};
}

TEST(VmDispatcher, EveryKindOfWindowAndFaultsOutsideThem) {
  ChildResult r = run_child([] {
    struct sigaction sa {};
    sa.sa_sigaction = catching_handler;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, nullptr);
    sigaction(SIGBUS, &sa, nullptr);

    Image image;
    image.words.resize(Image::kPages * kPage / 8);
    g_image = &image;
    auto pager = Pager::start(PagerOptions{"vm-pager", 2});
    if (!pager.ok()) _exit(90);

    RegionOptions empty;

    empty.backend = Backend::signals;  // this suite tests the signal backend
    empty.name = "empty";
    empty.policy = Policy::guard;
    empty.perms = perm_none;
    RegionOptions anon;
    anon.backend = Backend::signals;  // this suite tests the signal backend
    anon.name = "anon";
    anon.fault_around = 2;
    RegionOptions content = filled("content", Policy::provider, copy_from_image);
    RegionOptions paged = filled("paged", Policy::pager, pager_fill, reinterpret_cast<void*>(21));
    paged.pager = *pager;
    RegionOptions rom;
    rom.backend = Backend::signals;  // this suite tests the signal backend
    rom.name = "rom";
    rom.perms = perm_read;
    auto w_empty = reserve_region(2 * kPage, empty);
    auto w_anon = reserve_region(8 * kPage, anon);
    auto w_content = reserve_region(Image::kPages * kPage, content);
    auto w_paged = reserve_region(8 * kPage, paged);
    auto w_rom = reserve_region(kPage, rom);
    if (!w_empty.ok() || !w_anon.ok() || !w_content.ok() || !w_paged.ok() || !w_rom.ok()) _exit(91);
    test::Page outside(PROT_NONE);

    std::atomic<int> failures{0};
    auto expect = [&](bool ok, const char* what) {
      if (!ok) {
        std::fprintf(stderr, "FAILED: %s\n", what);
        failures++;
      }
    };
    std::vector<std::thread> threads;
    threads.emplace_back([&] {  // the initialiser
      for (std::size_t pg = 0; pg < Image::kPages; ++pg) {
        for (std::size_t i = 0; i < kPage / 8; ++i) image.words[pg * kPage / 8 + i] = pattern(33, pg * kPage + i * 8);
        image.ready_pages.store(pg + 1, std::memory_order_release);
      }
    });
    threads.emplace_back([&] {
      char* p = static_cast<char*>(w_empty->data());
      Caught c = attempt([&] { (void)static_cast<volatile char*>(p)[kPage + 3]; });
      expect(c.sig == SIGSEGV && c.addr == p + kPage + 3, "guard window: the program's handler sees the access");
    });
    threads.emplace_back([&] {
      auto* p = static_cast<volatile char*>(w_anon->data());
      Caught c = attempt([&] {
        for (std::size_t i = 0; i < 8; ++i) {
          if (p[i * kPage] != 0) failures++;
          p[i * kPage] = static_cast<char>(i + 1);
        }
      });
      expect(c.sig == 0, "anonymous window: zero-filled, writable");
      expect(p[7 * kPage] == 8, "anonymous window keeps what was written");
    });
    threads.emplace_back([&] {
      const char* p = static_cast<const char*>(w_content->data());
      bool same = false;
      Caught c = attempt([&] { same = check_pattern(p, 33, 0, Image::kPages * kPage); });
      expect(c.sig == 0 && same, "content window: the initialiser's bytes");
    });
    threads.emplace_back([&] {
      char* p = static_cast<char*>(w_paged->data());
      bool same = false;
      Caught c = attempt([&] { same = check_pattern(p, 21, 3 * kPage, 2 * kPage); });
      expect(c.sig == 0 && same, "pager window: the pager's bytes");
    });
    threads.emplace_back([&] {
      char* p = outside.get();
      Caught c = attempt([&] { (void)static_cast<volatile char*>(p)[100]; });
      expect(c.sig == SIGSEGV && c.addr == p + 100, "outside every window: the program's handler");
    });
    threads.emplace_back([&] {
      auto* p = static_cast<volatile char*>(w_rom->data());
      Caught c = attempt([&] { expect(p[8] == 0, "read-only window reads zero"); });
      expect(c.sig == 0, "read-only window: reading is resolved");
      c = attempt([&] { p[8] = 1; });
      expect(c.sig == SIGSEGV && c.code == SEGV_ACCERR && c.addr == p + 8,
             "read-only window: a write reaches the program's handler");
    });
    for (auto& t : threads) t.join();
    if (failures != 0) _exit(1);
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
      RegionOptions o = filled("stress", Policy::provider, fill_pattern, reinterpret_cast<void*>(k + 1));
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
        auto tmp = reserve_region(2 * kPage, filled("churn", Policy::provider, fill_pattern));
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
