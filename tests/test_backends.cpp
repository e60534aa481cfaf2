// tests/test_backends.cpp: the region policies on both backends (signals; userfaultfd with a handler
// thread; userfaultfd self-service), plus what only userfaultfd does: backend choice and its reason,
// EFAULT from a system call in self-service mode, madvise/munmap while faults are in flight.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <setjmp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "child.hpp"
#include "faultline/region.hpp"
#include "faultline/remote_pager.hpp"
#include "faultline/report.hpp"

namespace faultline {
namespace {

using test::ChildResult;
using test::run_child;

const std::size_t kPage = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));

struct BackendCase {
  const char* name;
  Backend backend;
  UserfaultfdMode mode;
};

class Backends : public ::testing::TestWithParam<BackendCase> {
 protected:
  void SetUp() override {
    if (GetParam().backend == Backend::userfaultfd && !userfaultfd_available().ok()) {
      GTEST_SKIP() << "userfaultfd not available here: " << userfaultfd_available().error().message();
    }
  }
  RegionOptions opts(const char* name, Policy p) const {
    RegionOptions o;
    o.name = name;
    o.policy = p;
    o.backend = GetParam().backend;
    o.userfaultfd_mode = GetParam().mode;
    return o;
  }
};

std::uint64_t pattern(std::uint64_t tag, std::size_t off) { return (tag << 40) ^ (off / 8) ^ 0x77; }

std::atomic<int> g_fills{0};
FillStatus fill_pattern(const FillRequest& req, void* data) {
  g_fills++;
  auto* w = reinterpret_cast<std::uint64_t*>(req.dest);
  for (std::size_t i = 0; i < req.length / 8; ++i) w[i] = pattern(reinterpret_cast<std::uintptr_t>(data), req.offset + i * 8);
  return {};
}
FillStatus fill_fails(const FillRequest&, void*) { return FillStatus{EIO, "disk on fire"}; }

bool check(const void* base, std::uint64_t tag, std::size_t off, std::size_t len) {
  auto* w = static_cast<const volatile std::uint64_t*>(base);
  for (std::size_t o = off; o < off + len; o += 8) {
    if (w[o / 8] != pattern(tag, o)) return false;
  }
  return true;
}

TEST_P(Backends, ZeroFillSequentialAndRandom) {
  ChildResult r = run_child([&] {
    RegionOptions o = opts("zeros", Policy::zero_fill);
    o.fault_around = 4;
    auto reg = reserve_region(256 * kPage, o);
    if (!reg.ok()) _exit(90);
    if (reg->backend() != GetParam().backend) _exit(91);
    auto* p = static_cast<volatile char*>(reg->data());
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
    RegionOptions o = opts("image", Policy::provider);
    o.fill = fill_pattern;
    o.fill_data = reinterpret_cast<void*>(3);
    auto reg = reserve_region(64 * kPage, o);
    if (!reg.ok()) _exit(90);
    if (!check(reg->data(), 3, 0, 64 * kPage)) _exit(1);
    static_cast<volatile char*>(reg->data())[5] = 1;  // writable after the fill
    if (!reg->discard(0, 64).ok()) _exit(2);
    if (!check(reg->data(), 3, 0, 64 * kPage)) _exit(3);  // filled again
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

TEST_P(Backends, ManyThreadsOnTheSamePages) {
  ChildResult r = run_child([&] {
    RegionOptions o = opts("shared", Policy::provider);
    o.fill = fill_pattern;
    o.fill_data = reinterpret_cast<void*>(8);
    auto reg = reserve_region(32 * kPage, o);
    if (!reg.ok()) _exit(90);
    std::atomic<int> bad{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 8; ++t) {
      ts.emplace_back([&] {
        if (!check(reg->data(), 8, 0, 32 * kPage)) bad++;
      });
    }
    for (auto& t : ts) t.join();
    if (bad.load() != 0) _exit(1);
    // One fill per page, except in self-service mode, where threads that fault on one page at once may
    // each run the provider (the first copy wins, the others meet -EEXIST).
    if (GetParam().mode != UserfaultfdMode::self_service && g_fills.load() > 32) _exit(2);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

TEST_P(Backends, PagerContents) {
  if (GetParam().mode == UserfaultfdMode::self_service) GTEST_SKIP() << "a pager region is never self-service";
  ChildResult r = run_child([&] {
    auto pager = Pager::start();
    if (!pager.ok()) _exit(90);
    RegionOptions o = opts("paged", Policy::pager);
    o.fill = fill_pattern;
    o.fill_data = reinterpret_cast<void*>(4);
    o.pager = *pager;
    auto reg = reserve_region(16 * kPage, o);
    if (!reg.ok()) _exit(91);
    if (!check(reg->data(), 4, 0, 16 * kPage)) _exit(1);
    if (pager->stats().requests == 0) _exit(2);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

TEST_P(Backends, ProviderFailureEndsInSigbusWithTheCause) {
  ChildResult r = run_child([&] {
    if (!report::enable().ok()) _exit(90);
    RegionOptions o = opts("broken", Policy::provider);
    o.fill = fill_fails;
    auto reg = reserve_region(4 * kPage, o);
    if (!reg.ok()) _exit(91);
    (void)static_cast<volatile char*>(reg->data())[2 * kPage];
    _exit(1);  // never a zero page
  });
  EXPECT_TRUE(r.signaled() && r.signal() == SIGBUS) << r;
  EXPECT_NE(r.output.find("failed on page 2: EIO (errno 5): disk on fire"), std::string::npos) << r;
  EXPECT_NE(r.output.find("'broken'"), std::string::npos) << r;
}

std::atomic<bool> g_stuck{true};
FillStatus stuck(const FillRequest& req, void* data) {
  while (g_stuck.load()) std::this_thread::yield();
  return fill_pattern(req, data);
}

TEST_P(Backends, PagerThatNeverAnswersEndsInSigbus) {
  if (GetParam().mode == UserfaultfdMode::self_service) GTEST_SKIP() << "a pager region is never self-service";
  ChildResult r = run_child([&] {
    auto pager = Pager::start();
    if (!pager.ok()) _exit(90);
    RegionOptions o = opts("slow", Policy::pager);
    o.fill = stuck;
    o.pager = *pager;
    o.fill_timeout = std::chrono::milliseconds(100);
    auto reg = reserve_region(kPage, o);
    if (!reg.ok()) _exit(91);
    (void)static_cast<volatile char*>(reg->data())[0];
    _exit(1);
  });
  EXPECT_TRUE(r.signaled() && r.signal() == SIGBUS) << r;
  EXPECT_NE(r.output.find("ETIMEDOUT"), std::string::npos) << r;
}

TEST_P(Backends, WriteTrackingCollectsAndReArms) {
  for (DirtyTracking mode : {DirtyTracking::async_wp, DirtyTracking::sync_wp}) {
  if (GetParam().backend != Backend::userfaultfd && mode == DirtyTracking::sync_wp) continue;
  ChildResult r = run_child([&] {
    RegionOptions o = opts("cards", Policy::track_dirty);
    o.dirty_tracking = mode;
    auto reg = reserve_region(64 * kPage, o);
    if (!reg.ok()) _exit(90);
    auto* p = static_cast<volatile char*>(reg->data());
    for (std::size_t i : {3, 4, 5, 40}) p[i * kPage + 1] = 1;
    (void)p[10 * kPage];  // a read is not a write
    auto d = reg->collect_dirty();
    if (!d.ok() || *d != std::vector<std::size_t>{3, 4, 5, 40}) _exit(1);
    auto none = reg->collect_dirty();
    if (!none.ok() || !none->empty()) _exit(2);
    p[4 * kPage] = 2;
    auto again = reg->collect_dirty();
    if (!again.ok() || *again != std::vector<std::size_t>{4}) _exit(3);
    if (p[3 * kPage + 1] != 1) _exit(4);  // contents kept
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r << (mode == DirtyTracking::sync_wp ? " (sync_wp)" : "");
  }
}

// A system call that writes into a missing page: the handler-thread backend fills it (the kernel waits
// for the fill); the signal backend and self-service mode cannot, so the call fails with EFAULT.
TEST_P(Backends, ReadSystemCallIntoAMissingPage) {
  ChildResult r = run_child([&] {
    auto reg = reserve_region(kPage, opts("syscall", Policy::zero_fill));
    if (!reg.ok()) _exit(90);
    int fd = open("/proc/self/stat", O_RDONLY);
    const ssize_t n = read(fd, reg->data(), 64);
    const bool filled = GetParam().backend == Backend::userfaultfd && GetParam().mode == UserfaultfdMode::handler_thread;
    if (filled ? n <= 0 : (n != -1 || errno != EFAULT)) _exit(1);
    if (!prefault(reg->data(), kPage, Access::write).ok()) _exit(2);
    if (read(fd, reg->data(), 64) <= 0) _exit(3);  // prefaulted: works everywhere
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
    unlink(path);
    if (!store.ok()) _exit(92);
    RegionOptions o = opts("file", Policy::provider);
    o.store = &store.value();
    auto reg = reserve_region(32 * kPage, o);
    if (!reg.ok()) _exit(93);
    auto* w = static_cast<const volatile std::uint64_t*>(reg->data());
    const std::size_t base = kPage / 8;
    for (std::size_t i = 0; i + base < words.size(); ++i) {
      if (w[i] != words[base + i]) _exit(1);
    }
    for (std::size_t i = words.size() - base; i < 32 * kPage / 8; ++i) {
      if (w[i] != 0) _exit(2);  // past the end of the file: zeros, as with mmap
    }
    static_cast<volatile std::uint64_t*>(reg->data())[3] = 7;  // private: the file is not written
    if (FileStore::open(path).ok()) _exit(3);                  // gone
    if (FileStore::open("/etc/hostname", 100).ok()) _exit(4);  // offset not page-aligned
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

INSTANTIATE_TEST_SUITE_P(All, Backends,
                         ::testing::Values(BackendCase{"signals", Backend::signals, UserfaultfdMode::handler_thread},
                                           BackendCase{"uffd_thread", Backend::userfaultfd, UserfaultfdMode::handler_thread},
                                           BackendCase{"uffd_self", Backend::userfaultfd, UserfaultfdMode::self_service}),
                         [](const auto& p) { return std::string(p.param.name); });

TEST(BackendChoice, AutomaticSaysWhy) {
  ChildResult r = run_child([] {
    RegionOptions o;
    o.name = "auto";
    auto z = reserve_region(kPage, o);
    if (!z.ok()) _exit(90);
    const bool uffd = userfaultfd_available().ok();
    if ((z->backend() == Backend::userfaultfd) != uffd) _exit(1);
    if (std::strlen(z->backend_reason()) == 0) _exit(2);
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
    std::printf("zero_fill: %s; guard: %s\n", z->backend_reason(), g->backend_reason());
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// A program that madvises a region away while faults are in flight does not wedge the handler thread.
TEST(Uffd, MadviseWhileFaultsAreInFlight) {
  if (!userfaultfd_available().ok()) GTEST_SKIP() << "no userfaultfd";
  ChildResult r = run_child([] {
    RegionOptions o;
    o.name = "churn";
    o.policy = Policy::provider;
    o.fill = fill_pattern;
    o.fill_data = reinterpret_cast<void*>(6);
    o.backend = Backend::userfaultfd;
    auto reg = reserve_region(256 * kPage, o);
    if (!reg.ok()) _exit(90);
    std::atomic<bool> stop{false};
    std::atomic<int> bad{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t) {
      ts.emplace_back([&, t] {
        std::mt19937 rng(static_cast<unsigned>(t));
        while (!stop.load()) {
          const std::size_t off = (rng() % (256 * kPage / 8)) * 8;
          if (static_cast<const volatile std::uint64_t*>(reg->data())[off / 8] != pattern(6, off)) bad++;
        }
      });
    }
    for (int k = 0; k < 200; ++k) {
      madvise(reg->data(), 256 * kPage, MADV_DONTNEED);  // the program's own madvise, not discard()
      if (!reg->discard(0, 256).ok()) _exit(1);
    }
    stop = true;
    for (auto& t : ts) t.join();
    if (bad.load() != 0) _exit(2);
  }, 120);
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// Dirty pages of a file-backed region go back to the file on flush() and evict(); evicted pages come
// back from the file with what was written.
TEST(Uffd, FileStoreWriteBackFlushAndEvict) {
  if (!userfaultfd_available().ok()) GTEST_SKIP() << "no userfaultfd";
  ChildResult r = run_child([] {
    char path[] = "/tmp/faultline-writeback-XXXXXX";
    const int fd = mkstemp(path);
    if (fd < 0) _exit(90);
    std::vector<char> zeros(16 * kPage, 'a');
    if (write(fd, zeros.data(), zeros.size()) != static_cast<ssize_t>(zeros.size())) _exit(91);
    auto store = FileStore::open(path, 0, true);
    if (!store.ok()) _exit(92);
    RegionOptions o;
    o.name = "file-rw";
    o.policy = Policy::provider;
    o.store = &store.value();
    o.write_back = true;
    auto reg = reserve_region(16 * kPage, o);
    if (!reg.ok()) {
      std::fprintf(stderr, "%s\n", reg.error().message().c_str());
      _exit(93);
    }
    auto* p = static_cast<volatile char*>(reg->data());
    if (p[0] != 'a' || p[5 * kPage] != 'a') _exit(1);  // read: no page is dirty
    p[2 * kPage] = 'X';
    p[3 * kPage + 1] = 'Y';
    p[9 * kPage] = 'Z';
    auto n = reg->flush();
    if (!n.ok() || *n != 3) _exit(2);
    char c = 0;
    if (pread(fd, &c, 1, static_cast<off_t>(2 * kPage)) != 1 || c != 'X') _exit(3);
    auto again = reg->flush();
    if (!again.ok() || *again != 0) _exit(4);  // nothing written since
    p[9 * kPage + 5] = 'W';
    auto ev = reg->evict(8, 8);  // writes back page 9, drops pages 8..15
    if (!ev.ok() || *ev != 1) _exit(5);
    if (p[9 * kPage + 5] != 'W' || p[9 * kPage] != 'Z') _exit(6);  // filled again, from the file
    if (reg->flush().ok() && reg->evict(15, 2).ok()) _exit(7);      // range checked
    unlink(path);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// The watermark: with more pages resident than max_resident_pages, the oldest are written back (if
// dirty) and dropped by faultline's evictor; reading them again brings back what was written.
class VectorStore final : public Store {
 public:
  explicit VectorStore(std::vector<char>& v) : v_(v) {}
  FillStatus fill(const FillRequest& req) override {
    std::memcpy(req.dest, v_.data() + req.offset, req.length);
    return {};
  }
  FillStatus write_back(const WriteBackRequest* runs, std::size_t n, std::size_t* stored) override {
    for (std::size_t i = 0; i < n; ++i) std::memcpy(v_.data() + runs[i].offset, runs[i].src, runs[i].length);
    *stored = n;
    return {};
  }
  bool writable() const noexcept override { return true; }

 private:
  std::vector<char>& v_;
};

TEST(Uffd, WatermarkEvictsTheOldestAndWritesThemBack) {
#if defined(__SANITIZE_THREAD__)
  // The evictor reads pages the test thread wrote; what orders the two is the write-protect fault in the
  // kernel, which TSan cannot see, so it reports a race that is not one.
  GTEST_SKIP() << "TSan cannot see the ordering a userfaultfd write-protect fault provides";
#endif
  if (!userfaultfd_available().ok()) GTEST_SKIP() << "no userfaultfd";
  ChildResult r = run_child([] {
    std::vector<char> backing(64 * kPage, 'b');
    VectorStore store(backing);
    RegionOptions o;
    o.name = "bounded";
    o.policy = Policy::provider;
    o.store = &store;
    o.write_back = true;
    o.readahead_max = 1;
    o.max_resident_pages = 8;
    auto reg = reserve_region(64 * kPage, o);
    if (!reg.ok()) _exit(90);
    auto* p = static_cast<volatile char*>(reg->data());
    for (std::size_t i = 0; i < 64; ++i) {
      if (p[i * kPage] != 'b') _exit(1);
      p[i * kPage + 1] = static_cast<char>('A' + i % 26);  // every page dirty
    }
    // The evictor works in the background: wait (bounded) until at most 8 + one window are resident.
    std::vector<unsigned char> vec(64);
    std::size_t resident = 64;
    for (int k = 0; k < 10000 && resident > 9; ++k) {
      mincore(reg->data(), 64 * kPage, vec.data());
      resident = 0;
      for (unsigned char v : vec) resident += v & 1;
      if (resident > 9) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (resident > 9) {
      std::fprintf(stderr, "%zu pages resident\n", resident);
      _exit(2);
    }
    for (std::size_t i = 0; i < 64; ++i) {  // evicted pages come back with their writes
      if (p[i * kPage + 1] != static_cast<char>('A' + i % 26)) _exit(3);
    }
  }, 60);
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// A program that munmaps a region's memory while threads fault on it: the threads get SIGSEGV (the
// memory is gone), and the handler thread goes on serving other regions.
thread_local sigjmp_buf t_unmapped;
void on_unmapped(int, siginfo_t*, void*) { siglongjmp(t_unmapped, 1); }

TEST(Uffd, MunmapWhileFaultsAreInFlight) {
  if (!userfaultfd_available().ok()) GTEST_SKIP() << "no userfaultfd";
  ChildResult r = run_child([] {
    struct sigaction sa {};
    sa.sa_sigaction = on_unmapped;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, nullptr);  // installed before faultline: it gets the faults nobody resolves
    RegionOptions o;
    o.name = "vanishing";
    o.policy = Policy::provider;
    o.fill = fill_pattern;
    o.fill_data = reinterpret_cast<void*>(2);
    o.backend = Backend::userfaultfd;
    auto a = reserve_region(512 * kPage, o);
    if (!a.ok()) _exit(90);
    std::atomic<long> reads{0};
    std::atomic<int> bad{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 3; ++t) {
      ts.emplace_back([&, t] {
        std::mt19937 rng(static_cast<unsigned>(t));
        if (sigsetjmp(t_unmapped, 1) != 0) {  // the memory went away under us
          leave_handler();
          return;
        }
        for (;;) {
          const std::size_t off = (rng() % (512 * kPage / 8)) * 8;
          if (static_cast<const volatile std::uint64_t*>(a->data())[off / 8] != pattern(2, off)) bad++;
          reads++;
        }
      });
    }
    while (reads.load() < 2000) std::this_thread::yield();
    munmap(a->data(), 512 * kPage);  // the program's own munmap, faults in flight
    for (auto& t : ts) t.join();
    if (bad.load() != 0) _exit(1);
    if (!a->reset().ok()) _exit(3);  // the region still owned the range: give it up
    o.name = "after";
    o.fill_data = reinterpret_cast<void*>(3);
    auto b = reserve_region(64 * kPage, o);
    if (!b.ok() || !check(b->data(), 3, 0, 64 * kPage)) _exit(2);  // the handler thread still serves
  }, 60);
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// A pager in another process: it serves the faults until it is killed; then the region's missing pages
// are poisoned and the next access ends in SIGBUS with a report, not a zero page or a hang.
TEST(Uffd, PagerInAnotherProcessAndItsDeath) {
  if (!userfaultfd_available().ok()) GTEST_SKIP() << "no userfaultfd";
  ChildResult r = run_child([] {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) _exit(90);
    const pid_t pager = fork();
    if (pager == 0) {  // the pager process
      close(sv[0]);
      auto region = remote_pager::receive(sv[1]);
      if (!region.ok()) _exit(1);
      (void)region->serve(fill_pattern, reinterpret_cast<void*>(5));
      _exit(0);
    }
    close(sv[1]);
    if (!report::enable().ok()) _exit(91);
    RegionOptions o;
    o.name = "remote";
    o.policy = Policy::pager;
    o.remote_pager_socket = sv[0];
    auto reg = reserve_region(16 * kPage, o);
    if (!reg.ok()) {
      std::fprintf(stderr, "%s\n", reg.error().message().c_str());
      _exit(92);
    }
    if (!check(reg->data(), 5, 0, 4 * kPage)) _exit(2);  // served by the other process
    std::printf("remote content ok\n");
    std::fflush(stdout);
    kill(pager, SIGKILL);
    waitpid(pager, nullptr, 0);
    (void)static_cast<volatile char*>(reg->data())[10 * kPage];  // nobody will ever supply this page
    _exit(3);
  });
  EXPECT_TRUE(r.signaled() && r.signal() == SIGBUS) << r;
  EXPECT_NE(r.output.find("remote content ok"), std::string::npos) << r;
  EXPECT_NE(r.output.find("the remote pager (the process at the other end of its socket) went away"), std::string::npos)
      << r;
}

}  // namespace
}  // namespace faultline
