// tests/region/test_policies.cpp: every policy on every backend that serves it (signals; userfaultfd
// with its handler thread; userfaultfd self-service), and the backend choice with its reason.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "faultline/region.hpp"
#include "faultline/report.hpp"
#include "support/backends.hpp"
#include "support/child.hpp"
#include "support/pages.hpp"

namespace faultline {
namespace {

using namespace test;  // tests/support/

// Zero-fill and provider policies: every backend, self-service included.
class Backends : public test::OnEveryBackend {};
// Pager and dirty-tracking policies: self-service serves neither (a pager is another thread; dirty
// tracking has no self-service mode), so they run on signals and the handler thread.
class ThreadedBackends : public test::OnEveryBackend {};

TEST_P(Backends, ZeroFillSequentialAndRandom) {
  ChildResult r = run_child([&] {
    RegionOptions o = opts("zeros", Policy::zero_fill);
    o.fault_around = 4;
    auto reg = must_reserve(256 * kPage, o);
    if (reg.backend() != GetParam().backend) _exit(91);
    auto* p = static_cast<volatile char*>(reg.data());
    for (std::size_t i = 0; i < 128; ++i) {  // sequential
      if (p[i * kPage] != 0) _exit(1);
      p[i * kPage + 1] = static_cast<char>(i);
    }
    std::mt19937 rng(5);
    for (int k = 0; k < 200; ++k) {  // random
      const std::size_t i = 128 + rng() % 128;
      if (p[i * kPage + 7] != 0 && p[i * kPage + 7] != 9) _exit(2);
      p[i * kPage + 7] = 9;
    }
    for (std::size_t i = 0; i < 128; ++i) {
      if (p[i * kPage + 1] != static_cast<char>(i)) _exit(3);
    }
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

TEST_P(Backends, ProviderContentsEverywhere) {
  ChildResult r = run_child([&] {
    auto reg = must_reserve(64 * kPage, with_fill(opts("image", Policy::provider), fill_pattern, fill_tag(3)));
    if (!check_pattern(reg.data(), 3, 0, 64 * kPage)) _exit(1);
    static_cast<volatile char*>(reg.data())[5] = 1;  // writable after the fill
    if (!reg.discard(0, 64).ok()) _exit(2);
    if (!check_pattern(reg.data(), 3, 0, 64 * kPage)) _exit(3);  // filled again
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

TEST_P(Backends, ManyThreadsOnTheSamePages) {
  ChildResult r = run_child([&] {
    g_pattern_fills = 0;
    auto reg = must_reserve(32 * kPage, with_fill(opts("shared", Policy::provider), fill_pattern, fill_tag(8)));
    std::atomic<int> bad{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 8; ++t) {
      ts.emplace_back([&] {
        if (!check_pattern(reg.data(), 8, 0, 32 * kPage)) bad++;
      });
    }
    for (auto& t : ts) t.join();
    if (bad.load() != 0) _exit(1);
    // One fill per page, except in self-service mode, where threads that fault on one page at once may
    // each run the provider (the first copy wins, the others meet -EEXIST).
    if (GetParam().mode != UserfaultfdMode::self_service && g_pattern_fills.load() > 32) _exit(2);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

TEST_P(ThreadedBackends, PagerContents) {
  ChildResult r = run_child([&] {
    const Pager pager = must_start_pager();
    const RegionOptions o = with_fill(opts("paged", Policy::pager), fill_pattern, fill_tag(4));
    auto reg = must_reserve(16 * kPage, with_pager(o, pager));
    if (!check_pattern(reg.data(), 4, 0, 16 * kPage)) _exit(1);
    if (pager.stats().requests == 0) _exit(2);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

TEST_P(Backends, ProviderFailureEndsInSigbusWithTheCause) {
  if (sigbus_to_self_under_emulator()) GTEST_SKIP() << "under qemu-user: " << kQemuSigbusToSelf;
  ChildResult r = run_child([&] {
    if (!report::enable().ok()) _exit(90);
    auto reg = must_reserve(4 * kPage, with_fill(opts("broken", Policy::provider), fill_fails));
    (void)static_cast<volatile char*>(reg.data())[2 * kPage + 9];
    _exit(1);  // never a zero page
  });
  EXPECT_TRUE(r.signaled() && r.signal() == SIGBUS) << r;
  EXPECT_NE(r.output.find("provider for region 'broken' failed on page 2: EIO (errno 5): disk on fire"),
            std::string::npos) << r;
  EXPECT_NE(r.output.find("region    'broken'"), std::string::npos) << r;
  EXPECT_NE(r.output.find("policy provider"), std::string::npos) << r;
  // The signal backend and self-service raise the kernel's own code for an unreadable file page; a page
  // poisoned by the handler thread gives the machine-check code, as the kernel does.
  if (!uffd() || self_service()) {
    EXPECT_NE(r.output.find("SIGBUS (BUS_ADRERR)"), std::string::npos) << r;
  }
}

std::atomic<bool> g_stuck{true};
FillStatus stuck(const FillRequest& req, void* data) {
  while (g_stuck.load()) std::this_thread::yield();
  return fill_pattern(req, data);
}

TEST_P(ThreadedBackends, PagerThatNeverAnswersEndsInSigbus) {
  if (sigbus_to_self_under_emulator()) GTEST_SKIP() << "under qemu-user: " << kQemuSigbusToSelf;
  ChildResult r = run_child([&] {
    RegionOptions o = with_pager(with_fill(opts("slow", Policy::pager), stuck), must_start_pager());
    o.fill_timeout = std::chrono::milliseconds(100);
    auto reg = must_reserve(kPage, o);
    (void)static_cast<volatile char*>(reg.data())[0];
    _exit(1);
  });
  EXPECT_TRUE(r.signaled() && r.signal() == SIGBUS) << r;
  EXPECT_NE(r.output.find("pager for region 'slow' failed on page 0: ETIMEDOUT"), std::string::npos) << r;
}

TEST_P(ThreadedBackends, DirtyTrackingCollectsAndReArms) {
  std::string skipped;
  for (DirtyTracking mode : {DirtyTracking::async_wp, DirtyTracking::sync_wp}) {
    if (!uffd() && mode == DirtyTracking::sync_wp) continue;  // one mechanism on signals
    if (uffd() && mode == DirtyTracking::async_wp) {
      // A kernel without WP_ASYNC (before 6.7, or masked) refuses it, naming what it lacks.
      RegionOptions o = opts("cards", Policy::track_dirty);
      o.dirty_tracking = mode;
      if (auto probe = reserve_region(kPage, o); !probe.ok()) {
        EXPECT_EQ(probe.error().code(), Errc::unsupported) << probe.error().message();
        EXPECT_NE(probe.error().message().find("WP_ASYNC"), std::string::npos) << probe.error().message();
        skipped = probe.error().message();
        continue;
      }
    }
    ChildResult r = run_child([&] {
      RegionOptions o = opts("cards", Policy::track_dirty);
      o.dirty_tracking = mode;
      auto reg = must_reserve(64 * kPage, o);
      auto* p = static_cast<volatile char*>(reg.data());
      if (p[10 * kPage] != 0) _exit(1);  // a read is not a write
      for (std::size_t i : {3, 4, 5, 40}) p[i * kPage + 1] = 1;
      p[40 * kPage + 2] = 2;  // the same page again
      auto d = reg.collect_dirty();
      if (!d.ok() || *d != std::vector<std::size_t>{3, 4, 5, 40}) _exit(2);
      auto none = reg.collect_dirty();
      if (!none.ok() || !none->empty()) _exit(3);
      p[4 * kPage] = 2;
      auto again = reg.collect_dirty();
      if (!again.ok() || *again != std::vector<std::size_t>{4}) _exit(4);
      if (p[3 * kPage + 1] != 1 || p[40 * kPage + 2] != 2) _exit(5);  // contents kept
      auto zeros = reserve_region(kPage, opts("z", Policy::zero_fill));
      if (!zeros.ok() || zeros->collect_dirty().ok()) _exit(6);  // only for track_dirty
    });
    EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r << (mode == DirtyTracking::sync_wp ? " (sync_wp)" : "");
  }
  if (!skipped.empty()) GTEST_SKIP() << "asynchronous tracking not checked: " << skipped;
}

// A system call that writes into a missing page: the handler-thread backend fills it (the kernel waits
// for the fill); the signal backend, self-service mode and a userfaultfd for user-mode faults only
// (unprivileged, vm.unprivileged_userfaultfd = 0) cannot, so the call fails with EFAULT, and the
// region's backend reason says so in the last case.
TEST_P(Backends, ReadSystemCallIntoAMissingPage) {
  ChildResult r = run_child([&] {
    auto reg = must_reserve(kPage, opts("syscall", Policy::zero_fill));
    int fd = open("/proc/self/stat", O_RDONLY);
    const ssize_t n = read(fd, reg.data(), 64);
    const bool user_mode_only = std::string(reg.backend_reason()).find("user-mode faults only") != std::string::npos;
    const bool filled = GetParam().backend == Backend::userfaultfd &&
                        GetParam().mode == UserfaultfdMode::handler_thread && !user_mode_only;
    if (filled ? n <= 0 : (n != -1 || errno != EFAULT)) _exit(1);
    if (!prefault(reg.data(), kPage, Access::write).ok()) _exit(2);
    if (read(fd, reg.data(), 64) <= 0) _exit(3);  // prefaulted: works everywhere
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// The built-in file store: a region that reads a file lazily, privately.
TEST_P(Backends, FileStoreReadsTheFileLazily) {
  ChildResult r = run_child([&] {
    char path[] = "/tmp/faultline-filestore-XXXXXX";
    const int fd = mkstemp(path);
    if (fd < 0) _exit(90);
    std::vector<std::uint64_t> words(20 * kPage / 8 + 100);  // 20 pages and a bit
    for (std::size_t i = 0; i < words.size(); ++i) words[i] = i * 0x9e3779b97f4a7c15ull;
    if (write(fd, words.data(), words.size() * 8) != static_cast<ssize_t>(words.size() * 8)) _exit(91);
    close(fd);
    auto store = FileStore::open(path, kPage);  // the region starts at the file's second page
    if (!store.ok()) _exit(92);
    RegionOptions o = opts("file", Policy::provider);
    o.store = &store.value();
    auto reg = must_reserve(32 * kPage, o);
    auto* w = static_cast<const volatile std::uint64_t*>(reg.data());
    const std::size_t base = kPage / 8;
    // Lazily: one read brings in its page (and at most a few after it), as the kernel sees it.
    if (w[10 * kPage / 8] != words[base + 10 * kPage / 8]) _exit(5);
    if (const std::size_t n = resident_pages(reg.data(), 32); !under_emulator() && (n == 0 || n > 4)) {  // kQemuResidency
      std::fprintf(stderr, "%zu pages resident after one read\n", n);
      _exit(6);
    }
    for (std::size_t i = 0; i + base < words.size(); ++i) {
      if (w[i] != words[base + i]) _exit(1);
    }
    for (std::size_t i = words.size() - base; i < 32 * kPage / 8; ++i) {
      if (w[i] != 0) _exit(2);  // past the end of the file: zeros, as with mmap
    }
    static_cast<volatile std::uint64_t*>(reg.data())[3] = 7;  // private: the file is not written
    std::uint64_t on_disk = 0;
    const int check = open(path, O_RDONLY);
    if (check < 0 || pread(check, &on_disk, 8, static_cast<off_t>(kPage + 24)) != 8 || on_disk != words[base + 3]) _exit(7);
    close(check);
    unlink(path);
    if (FileStore::open(path).ok()) _exit(3);                  // gone
    if (FileStore::open("/etc/hostname", 100).ok()) _exit(4);  // offset not page-aligned
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

FAULTLINE_ON_EVERY_BACKEND(Backends);
INSTANTIATE_TEST_SUITE_P(All, ThreadedBackends, ::testing::Values(test::kBackends[0], test::kBackends[1]),
                         [](const auto& p) { return std::string(p.param.name); });

TEST(BackendChoice, AutomaticSaysWhy) {
  ChildResult r = run_child([] {
    RegionOptions o;
    o.name = "auto";
    auto z = must_reserve(kPage, o);
    const bool uffd = userfaultfd_available().ok();
    if ((z.backend() == Backend::userfaultfd) != uffd) _exit(1);
    if (std::strlen(z.backend_reason()) == 0) _exit(2);
    o.policy = Policy::guard;
    o.perms = perm_none;
    auto g = reserve_region(kPage, o);
    if (!g.ok() || g->backend() != Backend::signals ||
        std::string(g->backend_reason()).find("guard policy needs the signal backend") == std::string::npos) {
      _exit(3);
    }
    // Userfaultfd cannot be forced where it does not fit: a clear error.
    o.backend = Backend::userfaultfd;
    auto bad = reserve_region(kPage, o);
    if (bad.ok() || bad.error().code() != Errc::unsupported) _exit(4);
    RegionOptions ra;
    ra.readahead_max = 0;
    if (reserve_region(kPage, ra).ok()) _exit(5);
    std::printf("zero_fill: %s; guard: %s\n", z.backend_reason(), g->backend_reason());
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

}  // namespace
}  // namespace faultline
