// tests/region/test_uffd.cpp: what only the userfaultfd backend does: the program's own madvise and
// munmap while faults are in flight, write-back to the file store (flush, evict), the resident-page
// watermark, a pager in another process and its death.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <setjmp.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "faultline/region.hpp"
#include "faultline/report.hpp"
#include "support/backends.hpp"
#include "support/child.hpp"
#include "support/pages.hpp"
#include "support/signals.hpp"

namespace faultline {
namespace {

using namespace test;  // tests/support/

// A program that madvises a region away while faults are in flight does not wedge the handler thread.
TEST(Uffd, MadviseWhileFaultsAreInFlight) {
  FAULTLINE_SKIP_WITHOUT_USERFAULTFD();
  ChildResult r = run_child([] {
    auto reg = must_reserve(256 * kPage, filled_on_uffd("churn", Policy::provider, fill_pattern, fill_tag(6)));
    std::atomic<bool> stop{false};
    std::atomic<int> bad{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t) {
      ts.emplace_back([&, t] {
        std::mt19937 rng(static_cast<unsigned>(t));
        while (!stop.load()) {
          const std::size_t off = (rng() % (256 * kPage / 8)) * 8;
          if (static_cast<const volatile std::uint64_t*>(reg.data())[off / 8] != pattern(6, off)) bad++;
        }
      });
    }
    for (int k = 0; k < 200; ++k) {
      madvise(reg.data(), 256 * kPage, MADV_DONTNEED);  // the program's own madvise, not discard()
      if (!reg.discard(0, 256).ok()) _exit(1);
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
  FAULTLINE_SKIP_WITHOUT_USERFAULTFD();
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
    auto reg = must_reserve(16 * kPage, o, 93);
    auto* p = static_cast<volatile char*>(reg.data());
    if (p[0] != 'a' || p[5 * kPage] != 'a') _exit(1);  // read: no page is dirty
    p[2 * kPage] = 'X';
    p[3 * kPage + 1] = 'Y';
    p[9 * kPage] = 'Z';
    auto n = reg.flush();
    if (!n.ok() || *n != 3) _exit(2);
    char c = 0;
    if (pread(fd, &c, 1, static_cast<off_t>(2 * kPage)) != 1 || c != 'X') _exit(3);
    auto again = reg.flush();
    if (!again.ok() || *again != 0) _exit(4);  // nothing written since
    p[9 * kPage + 5] = 'W';
    (void)p[12 * kPage];
    auto ev = reg.evict(8, 8);  // writes back page 9, drops pages 8..15
    if (resident_pages(reg.data(), 16) == 16 || resident_pages(static_cast<char*>(reg.data()) + 8 * kPage, 8) != 0) {
      _exit(8);  // the kernel says they are gone
    }
    if (!ev.ok() || *ev != 1) _exit(5);
    if (p[9 * kPage + 5] != 'W' || p[9 * kPage] != 'Z') _exit(6);  // filled again, from the file
    if (reg.flush().ok() && reg.evict(15, 2).ok()) _exit(7);        // range checked
    unlink(path);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// Four threads fault at once, each on its own region (content-initialised, one page per fault), with
// three handler threads reading the one userfaultfd, and again in self-service mode (each thread fills
// its own faults): every byte is the store's, and the handler threads that run are the ones asked for.
FillStatus fill_with_page_index(const FillRequest& req, void*) {
  for (std::size_t off = 0; off < req.length; off += kPage) {
    std::memset(req.dest + off, static_cast<int>((req.offset + off) / kPage % 251 + 1), kPage);
  }
  return {};
}

void fault_from_four_threads(UserfaultfdMode mode) {
  constexpr std::size_t kPages = 256;
  std::vector<Region> regions;
  for (int t = 0; t < 4; ++t) {
    RegionOptions o;
    o.name = "parallel";
    o.policy = Policy::provider;
    o.fill = fill_with_page_index;
    o.backend = Backend::userfaultfd;
    o.userfaultfd_mode = mode;
    o.readahead_max = 1;
    regions.push_back(must_reserve(kPages * kPage, o));
  }
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      const auto* p = static_cast<const volatile unsigned char*>(regions[static_cast<std::size_t>(t)].data());
      for (std::size_t i = 0; i < kPages; ++i) {
        const std::size_t page = (i * 97 + static_cast<std::size_t>(t)) % kPages;  // a different order each
        if (p[page * kPage + 11] != page % 251 + 1) wrong.fetch_add(1);
      }
      // Who counted the work: the faulting thread itself in self-service mode, a handler thread otherwise.
      const ThreadStats mine = this_thread_stats();
      const std::uint64_t expected = mode == UserfaultfdMode::self_service ? kPages : 0;
      if (mine.pages_filled != expected || mine.fills != expected || mine.tid <= 0) wrong.fetch_add(1000);
    });
  }
  for (auto& th : threads) th.join();
  if (wrong.load() != 0) _exit(3);
}

TEST(Uffd, FourFaultingThreadsWithSeveralHandlerThreads) {
  FAULTLINE_SKIP_WITHOUT_USERFAULTFD();
  ChildResult r = run_child([] {
    if (set_userfaultfd_handler_threads(0).ok() || set_userfaultfd_handler_threads(65).ok()) _exit(1);
    if (!set_userfaultfd_handler_threads(3).ok()) _exit(2);
    fault_from_four_threads(UserfaultfdMode::handler_thread);
    std::printf("handler threads: %u\n", userfaultfd_handler_threads());
    if (userfaultfd_handler_threads() != 3) _exit(4);
    // The handler threads' counters: three threads, which filled the 4 x 256 pages between them.
    const std::vector<ThreadStats> handlers = userfaultfd_handler_thread_stats();
    std::uint64_t pages = 0, fills = 0, faults = 0;
    for (const ThreadStats& t : handlers) {
      std::printf("handler tid %ld: %llu faults, %llu pages\n", t.tid, (unsigned long long)t.faults,
                  (unsigned long long)t.pages_filled);
      if (t.tid <= 0) _exit(5);
      pages += t.pages_filled;
      fills += t.fills;
      faults += t.faults;
    }
    if (handlers.size() != 3 || pages != 4 * 256 || fills != 4 * 256 || faults < fills) _exit(6);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// FAULTLINE_STATS: at exit, the dispatcher's counters for each signal it saw, the regions still
// registered, and each handler thread's share.
TEST(Uffd, StatsSummaryAtExit) {
  FAULTLINE_SKIP_WITHOUT_USERFAULTFD();
  ChildResult r = run_child([] {
    setenv("FAULTLINE_STATS", "1", 1);
    if (!set_userfaultfd_handler_threads(1).ok()) _exit(1);
    RegionOptions o;
    o.name = "kept";
    o.policy = Policy::zero_fill;
    o.backend = Backend::userfaultfd;
    o.readahead_max = 1;
    Region& kept = *new Region(must_reserve(8 * kPage, o));  // left registered at exit
    RegionOptions s;
    s.name = "kept-signals";
    s.policy = Policy::zero_fill;
    s.backend = Backend::signals;
    Region& kept2 = *new Region(must_reserve(8 * kPage, s));
    auto* p = static_cast<volatile char*>(kept.data());
    auto* q = static_cast<volatile char*>(kept2.data());
    for (std::size_t i = 0; i < 8; ++i) p[i * kPage] = 1;
    q[0] = 1;
    std::fflush(stdout);
    std::exit(0);  // atexit handlers run: the summary
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
  EXPECT_NE(r.output.find("faultline stats: SIGSEGV: 1 seen, 1 resolved, 0 passed on"), std::string::npos) << r;
  EXPECT_NE(r.output.find("faultline stats: region 'kept' (still registered at exit): 8 faults, "), std::string::npos) << r;
  EXPECT_NE(r.output.find("faultline stats: region 'kept-signals' (still registered at exit): 1 faults"),
            std::string::npos) << r;
  EXPECT_NE(r.output.find("faultline stats: userfaultfd handler thread 1 (tid "), std::string::npos) << r;
  EXPECT_NE(r.output.find("): 8 faults, "), std::string::npos) << r;
}

// FAULTLINE_HANDLER_THREADS sets the default; set_userfaultfd_handler_threads() overrides it.
TEST(Uffd, HandlerThreadsFromTheEnvironment) {
  FAULTLINE_SKIP_WITHOUT_USERFAULTFD();
  ChildResult r = run_child([] {
    setenv("FAULTLINE_HANDLER_THREADS", "1", 1);
    fault_from_four_threads(UserfaultfdMode::handler_thread);
    std::printf("handler threads: %u\n", userfaultfd_handler_threads());
    if (userfaultfd_handler_threads() != 1) _exit(4);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

TEST(Uffd, FourFaultingThreadsInSelfServiceMode) {
  FAULTLINE_SKIP_WITHOUT_USERFAULTFD();
  ChildResult r = run_child([] { fault_from_four_threads(UserfaultfdMode::self_service); });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// Options of a provider region over `store` whose written pages go back to it.
RegionOptions write_back_options(const char* name, Store& store, std::size_t readahead_max) {
  RegionOptions o;
  o.name = name;
  o.policy = Policy::provider;
  o.store = &store;
  o.write_back = true;
  o.readahead_max = readahead_max;
  return o;
}

// TSan cannot see the ordering a userfaultfd write-protect fault provides (the store reads pages another
// thread wrote, ordered by that fault in the kernel): it would report a race that is not one.
#if defined(__SANITIZE_THREAD__)
#define FAULTLINE_SKIP_UNDER_TSAN_WP() GTEST_SKIP() << "TSan cannot see the ordering a userfaultfd write-protect fault provides"
#else
#define FAULTLINE_SKIP_UNDER_TSAN_WP() (void)0
#endif

// The counters: every fault message, every fill and its pages (the read-ahead among them), the pages
// written back and evicted; a fill latency for each fill. FAULTLINE_STATS prints them when the region ends.
TEST(Uffd, StatsCountFaultsFillsReadaheadAndEvictions) {
  FAULTLINE_SKIP_UNDER_TSAN_WP();
  FAULTLINE_SKIP_WITHOUT_USERFAULTFD();
  ChildResult r = run_child([] {
    setenv("FAULTLINE_STATS", "1", 1);
    std::vector<char> backing(64 * kPage, 's');
    VectorStore store(backing);
    RegionOptions o = write_back_options("counted", store, 8);
    o.fault_around = 8;
    auto reg = must_reserve(64 * kPage, o);
    auto* p = static_cast<volatile char*>(reg.data());
    for (std::size_t i = 0; i < 64; ++i) {
      if (p[i * kPage] != 's') _exit(1);
    }
    p[3 * kPage] = 'w';
    p[40 * kPage] = 'w';
    // A handler thread counts a fill after the kernel installed its pages: the stream may have read
    // them (asynchronous read-ahead) before they are counted. Wait for the count (bounded), then check.
    auto counted = [&] {
      const RegionStats c = reg.stats();
      std::uint64_t timed_now = 0;
      for (std::uint64_t k : c.fill_ns_log2) timed_now += k;
      return c.pages_filled >= 64 && timed_now == c.fills;
    };
    for (int i = 0; i < 5000 && !counted(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    // The fills, before the eviction (a read-ahead window still on its way may fill pages again after
    // it: the store's contents, counted as fills once more).
    const RegionStats s = reg.stats();
    auto ev = reg.evict(0, 64);
    if (!ev.ok() || *ev != 2) _exit(2);
    const RegionStats after = reg.stats();
    std::uint64_t timed = 0;
    for (std::uint64_t n : s.fill_ns_log2) timed += n;
    std::printf("faults %llu fills %llu pages %llu readahead %llu evicted %llu written %llu timed %llu\n",
                (unsigned long long)s.faults, (unsigned long long)s.fills, (unsigned long long)s.pages_filled,
                (unsigned long long)s.readahead_pages, (unsigned long long)after.pages_evicted,
                (unsigned long long)after.pages_written_back, (unsigned long long)timed);
    std::fflush(stdout);  // seen when a check below fails
    // Read ahead: every page but the faulting one of each fill, and all of an asynchronous one's.
    if (s.pages_filled != 64 || s.readahead_pages < 64 - s.fills || s.readahead_pages > 63 || s.fills < 8 || s.fills > 64) _exit(3);
    if (s.faults == 0 || timed != s.fills || s.failures != 0) _exit(4);
    if (after.pages_evicted != 64 || after.pages_written_back != 2) _exit(5);
    if (s.fill_ns_quantile(0.5) == 0 || s.fill_ns_quantile(0.5) > s.fill_ns_quantile(1.0)) _exit(6);
    std::fflush(stdout);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
  EXPECT_NE(r.output.find("faultline stats: region 'counted': "), std::string::npos) << r;
  EXPECT_NE(r.output.find("64 pages evicted, 2 written back"), std::string::npos) << r;
}

// A write to a page while an eviction is storing it is not lost: the write waits until the page has
// been stored and dropped, then faults it in again and lands. (Without the hold, the write would go into
// the old page after its contents were stored, and the drop would lose it.) The store's write-back
// pauses to give the writer time to try; if the writer is late, the test only proves less.
class PausingStore final : public Store {
 public:
  explicit PausingStore(std::vector<char>& v) : v_(v) {}
  FillStatus fill(const FillRequest& req) override {
    std::memcpy(req.dest, v_.data() + req.offset, req.length);
    return {};
  }
  FillStatus write_back(const WriteBackRequest* runs, std::size_t n, std::size_t* stored) override {
    for (std::size_t i = 0; i < n; ++i) std::memcpy(v_.data() + runs[i].offset, runs[i].src, runs[i].length);
    entered.store(true);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    *stored = n;
    return {};
  }
  bool writable() const noexcept override { return true; }
  std::atomic<bool> entered{false};

 private:
  std::vector<char>& v_;
};

TEST(Uffd, AWriteDuringAnEvictionIsNotLost) {
  FAULTLINE_SKIP_UNDER_TSAN_WP();
  FAULTLINE_SKIP_WITHOUT_USERFAULTFD();
  ChildResult r = run_child([] {
    std::vector<char> backing(4 * kPage, 'o');
    PausingStore store(backing);
    RegionOptions o = write_back_options("evicting", store, 1);
    auto reg = must_reserve(4 * kPage, o);
    auto* p = static_cast<volatile char*>(reg.data());
    p[0] = 'A';  // filled, then dirty
    std::thread writer([&] {
      while (!store.entered.load()) std::this_thread::yield();
      p[1] = 'N';  // during the write-back of page 0
    });
    auto ev = reg.evict(0, 1);
    writer.join();
    if (!ev.ok()) _exit(1);
    std::printf("after the eviction: page 0 holds '%c' '%c'\n", p[0], p[1]);
    if (p[0] != 'A' || p[1] != 'N') _exit(2);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// A store that answers aligned runs in one request: read-ahead windows end on its boundaries, so that
// sequential windows after the first start on one.
class RecordingStore final : public Store {
 public:
  FillStatus fill(const FillRequest& req) override {
    std::memset(req.dest, 'r', req.length);
    std::lock_guard lock(m);
    runs.emplace_back(req.offset / kPage, req.length / kPage);
    return {};
  }
  std::size_t preferred_run_pages() const noexcept override { return 8; }
  std::mutex m;
  std::vector<std::pair<std::size_t, std::size_t>> runs;
};

TEST(Uffd, ReadaheadWindowsEndOnTheStoresPreferredRuns) {
  FAULTLINE_SKIP_WITHOUT_USERFAULTFD();
  RecordingStore store;
  RegionOptions o;
  o.name = "aligned";
  o.policy = Policy::provider;
  o.store = &store;
  o.fault_around = 3;
  o.readahead_max = 8;
  o.async_readahead = false;  // the windows of the faults alone
  auto reg = reserve_region(64 * kPage, o);
  if (!reg.ok() || reg->backend() != Backend::userfaultfd) GTEST_SKIP() << "needs the userfaultfd backend";
  auto* p = static_cast<volatile char*>(reg->data());
  for (std::size_t i = 0; i < 64; ++i) ASSERT_EQ(p[i * kPage], 'r');
  std::lock_guard lock(store.m);
  ASSERT_GE(store.runs.size(), 2u);
  // The window grows 1, 2, 4 from the first fault and is cut at page 8; from there on every window is
  // one whole run.
  for (const auto& [first, n] : store.runs) {
    EXPECT_EQ(first / 8, (first + n - 1) / 8) << "run " << first << "+" << n << " spans two runs of 8";
    EXPECT_TRUE(first < 8 || (first % 8 == 0 && n == 8)) << "run " << first << "+" << n << " is not one whole run";
  }
}

// The watermark: with more pages resident than max_resident_pages, the oldest are written back (if
// dirty) and dropped by faultline's evictor; reading them again brings back what was written.

TEST(Uffd, WatermarkEvictsTheOldestAndWritesThemBack) {
  FAULTLINE_SKIP_UNDER_TSAN_WP();  // the evictor reads pages the test thread wrote
  FAULTLINE_SKIP_WITHOUT_USERFAULTFD();
  ChildResult r = run_child([] {
    std::vector<char> backing(64 * kPage, 'b');
    VectorStore store(backing);
    RegionOptions o = write_back_options("bounded", store, 1);
    o.max_resident_pages = 8;
    auto reg = must_reserve(64 * kPage, o);
    auto* p = static_cast<volatile char*>(reg.data());
    for (std::size_t i = 0; i < 64; ++i) {
      if (p[i * kPage] != 'b') _exit(1);
      p[i * kPage + 1] = static_cast<char>('A' + i % 26);  // every page dirty
    }
    // The evictor works in the background: wait (bounded) until at most 8 + one window are resident.
    std::size_t resident = 64;
    for (int k = 0; k < 10000 && resident > 9; ++k) {
      resident = resident_pages(reg.data(), 64);
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
  FAULTLINE_SKIP_WITHOUT_USERFAULTFD();
  ChildResult r = run_child([] {
    install_handler(SIGSEGV, on_unmapped);  // installed before faultline: it gets the faults nobody resolves
    RegionOptions o = filled_on_uffd("vanishing", Policy::provider, fill_pattern, fill_tag(2));
    auto a = must_reserve(512 * kPage, o);
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
          if (static_cast<const volatile std::uint64_t*>(a.data())[off / 8] != pattern(2, off)) bad++;
          reads++;
        }
      });
    }
    while (reads.load() < 2000) std::this_thread::yield();
    munmap(a.data(), 512 * kPage);  // the program's own munmap, faults in flight
    for (auto& t : ts) t.join();
    if (bad.load() != 0) _exit(1);
    // The region's memory is gone: reset() unregisters it, says so, and leaves the range alone.
    const std::size_t before = region_count();
    auto rr = a.reset();
    if (rr.ok() || rr.error().code() != Errc::not_found || region_count() != before - 1) _exit(3);
    o.name = "after";
    o.fill_data = fill_tag(3);
    auto b = reserve_region(64 * kPage, o);
    if (!b.ok() || !check_pattern(b->data(), 3, 0, 64 * kPage)) _exit(2);  // the handler thread still serves
  }, 60);
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// A pager in another process: it serves the faults until it is killed; then the region's missing pages
// are poisoned and the next access ends in SIGBUS with a report, not a zero page or a hang.
TEST(Uffd, PagerInAnotherProcessAndItsDeath) {
  FAULTLINE_SKIP_WITHOUT_USERFAULTFD();
  ChildResult r = run_child([] {
    int socket = -1;
    const pid_t pager = fork_remote_pager(5, &socket);
    if (!report::enable().ok()) _exit(91);
    auto reg = must_reserve(16 * kPage, remote_paged("remote", socket), 92);
    if (!check_pattern(reg.data(), 5, 0, 4 * kPage)) _exit(2);  // served by the other process
    std::printf("remote content ok\n");
    std::fflush(stdout);
    kill(pager, SIGKILL);
    waitpid(pager, nullptr, 0);
    (void)static_cast<volatile char*>(reg.data())[10 * kPage];  // nobody will ever supply this page
    _exit(3);
  });
  EXPECT_TRUE(r.signaled() && r.signal() == SIGBUS) << r;
  EXPECT_NE(r.output.find("remote content ok"), std::string::npos) << r;
  EXPECT_NE(r.output.find("the remote pager (the process at the other end of its socket) went away"), std::string::npos)
      << r;
}


// Read-ahead: each fault right after the last window doubles the window (up to readahead_max); a fault
// anywhere else halves it.
// The handler thread records, the faulting thread reads (the kernel orders them; the lock tells TSan).
std::vector<std::size_t>* g_lengths = nullptr;
std::mutex g_lengths_mutex;
FillStatus recording_pattern(const FillRequest& req, void* data) {
  {
    std::lock_guard lock(g_lengths_mutex);
    g_lengths->push_back(req.length / kPage);
  }
  return fill_pattern(req, data);
}
std::vector<std::size_t> recorded_lengths() {
  std::lock_guard lock(g_lengths_mutex);
  return *g_lengths;
}

TEST(Uffd, ReadaheadDoublesOnSequentialFaultsAndHalvesOnRandomOnes) {
  FAULTLINE_SKIP_WITHOUT_USERFAULTFD();
  ChildResult r = run_child([] {
    std::vector<std::size_t> lengths;
    lengths.reserve(64);
    g_lengths = &lengths;
    RegionOptions o = filled_on_uffd("readahead", Policy::provider, recording_pattern, fill_tag(41));
    o.readahead_max = 16;
    o.async_readahead = false;  // the windows of the faults alone
    auto reg = must_reserve(512 * kPage, o);
    auto* p = static_cast<const volatile char*>(reg.data());
    for (std::size_t i = 0; i < 64; ++i) (void)p[i * kPage];  // sequential: 1, 2, 4, 8, 16, 16, ...
    const std::size_t seq = recorded_lengths().size();
    for (std::size_t i : {400, 200, 300, 100}) (void)p[i * kPage];  // random: 8, 4, 2, 1
    lengths = recorded_lengths();
    for (std::size_t i = 0; i < lengths.size(); ++i) std::fprintf(stderr, "%zu ", lengths[i]);
    std::fprintf(stderr, "\n");
    const std::vector<std::size_t> want_seq{1, 2, 4, 8, 16, 16};
    if (seq < want_seq.size() || !std::equal(want_seq.begin(), want_seq.end(), lengths.begin())) _exit(1);
    const std::vector<std::size_t> want_rnd{8, 4, 2, 1};
    if (lengths.size() != seq + 4 || !std::equal(want_rnd.begin(), want_rnd.end(), lengths.begin() + seq)) _exit(2);
    if (!check_pattern(reg.data(), 41, 0, 64 * kPage)) _exit(3);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// A page whose fill failed stays failed (poisoned) until discard(), which makes it missing again.
std::atomic<int> g_fail_once{1};
FillStatus fails_once(const FillRequest& req, void* data) {
  if (g_fail_once.exchange(0) != 0) return FillStatus{EIO, "first read fails"};
  return fill_pattern(req, data);
}
thread_local sigjmp_buf t_poisoned;
void on_poisoned(int, siginfo_t*, void*) { siglongjmp(t_poisoned, 1); }

TEST(Uffd, DiscardClearsAPoisonedPage) {
  FAULTLINE_SKIP_WITHOUT_USERFAULTFD();
  ChildResult r = run_child([] {
    install_handler(SIGBUS, on_poisoned, SA_NODEFER);
    RegionOptions o = filled_on_uffd("poisoned", Policy::provider, fails_once, fill_tag(42));
    o.readahead_max = 1;
    auto reg = must_reserve(4 * kPage, o);
    auto* p = static_cast<const volatile std::uint64_t*>(reg.data());
    static int faults = 0;  // static: survives the longjmps
    if (sigsetjmp(t_poisoned, 1) == 0) {
      (void)p[0];
      _exit(1);  // the failed page must not read
    }
    leave_handler();
    if (++faults < 2) {
      if (sigsetjmp(t_poisoned, 1) == 0) {
        (void)p[0];
        _exit(2);  // still failed at the second access
      }
      leave_handler();
      ++faults;
    }
    if (!reg.discard(0, 1).ok()) _exit(3);
    if (!check_pattern(reg.data(), 42, 0, kPage)) _exit(4);  // filled afresh
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// Protection changes are the signal backend's: a userfaultfd region refuses them, alone or in a batch.
TEST(Uffd, ProtectIsRefused) {
  FAULTLINE_SKIP_WITHOUT_USERFAULTFD();
  ChildResult r = run_child([] {
    auto reg = must_reserve(4 * kPage, on_uffd("no-protect"));
    static_cast<volatile char*>(reg.data())[0] = 1;
    auto p = reg.protect(0, 1, perm_read);
    if (p.ok() || p.error().code() != Errc::unsupported) _exit(1);
    ProtectBatch batch;
    auto b = batch.add(reg, 0, 1, perm_none);
    if (b.ok() || b.error().code() != Errc::unsupported || batch.pending() != 0) _exit(2);
    static_cast<volatile char*>(reg.data())[0] = 2;  // still writable
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// huge_pages on userfaultfd: hugetlbfs pages of 2 MiB, each filled whole by one UFFDIO_COPY (zero_fill
// and provider). Where no hugetlbfs pages are reserved (the project's machines: nr_hugepages is 0) the
// region is refused with the reason and how to reserve them, which is what this test checks there; with
// pages reserved (echo 8 > /proc/sys/vm/nr_hugepages) it checks the fills.
TEST(HugePages, HugetlbfsPagesOnUserfaultfdAreFilledWhole) {
  FAULTLINE_SKIP_WITHOUT_USERFAULTFD();
  constexpr std::size_t kHuge = std::size_t{2} << 20;
  RegionOptions o;
  o.name = "hugetlb";
  o.huge_pages = true;
  o.backend = Backend::userfaultfd;
  auto zero = reserve_region(2 * kHuge, o);
  if (!zero.ok()) {
    EXPECT_EQ(zero.error().code(), Errc::unsupported);
    EXPECT_NE(zero.error().message().find("needs 2 hugetlbfs pages of 2 MiB"), std::string::npos) << zero.error().message();
    EXPECT_NE(zero.error().message().find("/proc/sys/vm/nr_hugepages"), std::string::npos) << zero.error().message();
    GTEST_SKIP() << "no hugetlbfs pages here (the refusal was checked): " << zero.error().message();
  }
  EXPECT_EQ(zero->backend(), Backend::userfaultfd);
  const auto* z = static_cast<const volatile char*>(zero->data());
  EXPECT_EQ(z[kHuge + 12345], 0);  // a read: zeros copied (hugetlbfs has no zero page to map)
  for (std::size_t off = 0; off < kHuge; off += kPage) EXPECT_EQ(z[kHuge + off], 0);
  RegionStats s = zero->stats();
  EXPECT_EQ(s.fills, 1u);
  EXPECT_EQ(s.pages_filled, kHuge / kPage);
  EXPECT_EQ(zero->discard(1, 1).error().code(), Errc::invalid_argument);  // whole huge pages only
  EXPECT_TRUE(zero->discard(kHuge / kPage, kHuge / kPage).ok());
  EXPECT_EQ(z[kHuge], 0);
  EXPECT_EQ(zero->stats().fills, 2u);

  o.name = "hugetlb-provider";
  o.policy = Policy::provider;
  o.fill = fill_with_page_index;
  auto filled = reserve_region(2 * kHuge, o);
  ASSERT_TRUE(filled.ok()) << filled.error().message();
  const auto* p = static_cast<const volatile unsigned char*>(filled->data());
  for (std::size_t i = 2 * kHuge / kPage; i-- > 0;) ASSERT_EQ(p[i * kPage + 7], i % 251 + 1) << i;
  s = filled->stats();
  EXPECT_EQ(s.fills, 2u);
  EXPECT_EQ(s.pages_filled, 2 * kHuge / kPage);
}

// A provider that fails on a hugetlbfs region: the access ends in SIGBUS with a report naming the cause.
TEST(HugePages, AFailedHugePageFillEndsInSigbus) {
  FAULTLINE_SKIP_WITHOUT_USERFAULTFD();
  constexpr std::size_t kHuge = std::size_t{2} << 20;
  RegionOptions probe;
  probe.huge_pages = true;
  probe.backend = Backend::userfaultfd;
  if (auto r = reserve_region(kHuge, probe); !r.ok()) GTEST_SKIP() << r.error().message();
  ChildResult r = run_child([] {
    (void)report::enable();
    RegionOptions o;
    o.name = "hugetlb-failing";
    o.huge_pages = true;
    o.backend = Backend::userfaultfd;
    o.policy = Policy::provider;
    o.fill = [](const FillRequest&, void*) { return FillStatus{EIO, "the snapshot is unreadable"}; };
    auto reg = must_reserve(kHuge, o);
    (void)static_cast<volatile char*>(reg.data())[4096 * 3];
    _exit(0);
  });
  EXPECT_TRUE(r.signaled() && r.signal() == SIGBUS) << r;
  EXPECT_NE(r.output.find("the snapshot is unreadable"), std::string::npos) << r;
}

// Asynchronous read-ahead: a sequential stream at its widest window gets the windows after it before it
// faults there (fills that count every page as read ahead); a store that fails there fails nothing
// (no failure counted, no page poisoned), and the stream's own fault on such a page ends in SIGBUS
// with the store's reason.
TEST(Uffd, SequentialStreamsAreReadAheadAsynchronously) {
  FAULTLINE_SKIP_WITHOUT_USERFAULTFD();
  ChildResult r = run_child([] {
    RegionOptions o;
    o.name = "stream";
    o.policy = Policy::provider;
    o.backend = Backend::userfaultfd;
    o.readahead_max = 8;
    o.fill = fill_with_page_index;
    auto reg = must_reserve(1024 * kPage, o);
    const auto* p = static_cast<const volatile unsigned char*>(reg.data());
    for (std::size_t i = 0; i < 1024; ++i) {
      if (p[i * kPage] != i % 251 + 1) _exit(1);
    }
    // The last read-ahead may still be counting (its pages are installed before they are counted).
    RegionStats s = reg.stats();
    for (int i = 0; i < 100000 && s.pages_filled < 1024; ++i) {
      sched_yield();
      s = reg.stats();
    }
    std::printf("faults %llu fills %llu pages %llu read ahead %llu\n", (unsigned long long)s.faults,
                (unsigned long long)s.fills, (unsigned long long)s.pages_filled, (unsigned long long)s.readahead_pages);
    if (s.pages_filled != 1024) _exit(2);
    if (s.readahead_pages <= s.pages_filled - s.fills) _exit(3);  // some fill had no faulting page
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// One wake-up per batch: a sequential stream's thread is woken when its faulting window and the
// read-ahead after it are all in, not as soon as its own page is. The store takes 10 ms for each
// speculative window (FillRequest::tid 0), so that a thread woken early would find the first window
// after its own still missing when its access returns. Each access that faults (its page absent just
// before) once the stream runs at its widest window must find the next window present just after.
TEST(Uffd, AStreamIsWokenWhenItsReadAheadIsIn) {
  FAULTLINE_SKIP_WITHOUT_USERFAULTFD();
  ChildResult r = run_child([] {
    RegionOptions o;
    o.name = "batch";
    o.policy = Policy::provider;
    o.backend = Backend::userfaultfd;
    o.readahead_max = 8;
    o.fill = [](const FillRequest& req, void*) {
      if (req.tid == 0) {
        struct timespec ts{0, 10'000'000};
        nanosleep(&ts, nullptr);
      }
      return fill_with_page_index(req, nullptr);
    };
    constexpr std::size_t kPages = 256;
    auto reg = must_reserve(kPages * kPage, o);
    auto* base = static_cast<unsigned char*>(reg.data());
    const auto* p = static_cast<const volatile unsigned char*>(reg.data());
    auto present = [&](std::size_t i) {
      unsigned char v = 0;
      return mincore(base + i * kPage, kPage, &v) == 0 && (v & 1) != 0;
    };
    int checked = 0, early = 0;
    for (std::size_t i = 0; i < kPages; ++i) {
      const bool faults = !present(i);
      if (p[i * kPage] != i % 251 + 1) _exit(1);
      if (faults && i >= 32 && i + 2 * o.readahead_max <= kPages) {
        ++checked;
        if (!present(i + o.readahead_max)) ++early;
      }
    }
    std::printf("faults checked %d, woken before the read-ahead was in %d\n", checked, early);
    if (checked < 2) _exit(2);  // the stream never reached its widest window
    if (early != 0) _exit(3);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// The store refuses every request no thread waits for (FillRequest::tid 0: the speculative windows;
// the stream's own faults name its thread). The stream must still read every page right (a refused
// read-ahead poisons nothing), no failure may be counted, and a page the stream never read, once the
// store refuses it to the stream itself, ends in SIGBUS with the store's reason. (The test once waited
// for the read-ahead to pass a fixed page; whether the stream's last window was wide enough to start
// one depended on timing.)
// Both fill paths: copies, and the shmem cache where the kernel has it.
void failed_readahead_fails_nothing(FillPath path) {
  ChildResult r = run_child([path] {
    (void)report::enable();
    RegionOptions o;
    o.name = "short-file";
    o.policy = Policy::provider;
    o.backend = Backend::userfaultfd;
    o.fill_path = path;
    o.readahead_max = 8;
    static std::atomic<int> refused{0};
    static std::atomic<bool> refuse_all{false};
    o.fill = [](const FillRequest& req, void*) {
      if (refuse_all.load() || req.tid == 0) {
        refused.fetch_add(1);
        return FillStatus{EIO, "past the end of the snapshot"};
      }
      return fill_with_page_index(req, nullptr);
    };
    auto reg = must_reserve(1024 * kPage, o);
    const auto* p = static_cast<const volatile unsigned char*>(reg.data());
    for (std::size_t i = 0; i < 256; ++i) {
      if (p[i * kPage] != i % 251 + 1) _exit(1);
    }
    if (refused.load() == 0) _exit(4);        // no read-ahead was tried at all
    if (reg.stats().failures != 0) _exit(2);  // a refused read-ahead was counted as a failure
    refuse_all.store(true);
    std::printf("every page read right\n");
    std::fflush(stdout);
    (void)p[700 * kPage];  // never read ahead (every speculative window was refused): SIGBUS
    _exit(3);
  });
  EXPECT_TRUE(r.signaled() && r.signal() == SIGBUS) << fill_path_name(path) << ": " << r;
  EXPECT_NE(r.output.find("every page read right"), std::string::npos) << fill_path_name(path) << ": " << r;
  EXPECT_NE(r.output.find("past the end of the snapshot"), std::string::npos) << fill_path_name(path) << ": " << r;
}

TEST(Uffd, AFailedReadAheadFailsNothing) {
  FAULTLINE_SKIP_WITHOUT_USERFAULTFD();
  failed_readahead_fails_nothing(FillPath::copy);
  if (shmem_cache_here()) failed_readahead_fails_nothing(FillPath::shmem_cache);
}

// Self-service fills run on the faulting thread's alternate stack, through a 16 KiB buffer there. A
// thread that never attached and set a small stack of its own (Rust's std: 8-12 KiB, over a guard page)
// cannot hold it: the access ends in SIGBUS naming the cause, instead of running off the stack.
TEST(Uffd, SelfServiceOnASmallAlternateStackIsRefusedWithTheCause) {
  FAULTLINE_SKIP_WITHOUT_USERFAULTFD();
  ChildResult r = run_child([] {
    RegionOptions o;
    o.name = "self-small";
    o.policy = Policy::provider;
    o.backend = Backend::userfaultfd;
    o.userfaultfd_mode = UserfaultfdMode::self_service;
    o.fill = fill_with_page_index;
    auto reg = must_reserve(4 * kPage, o);
    const auto* p = static_cast<const volatile unsigned char*>(reg.data());
    if (p[0] != 1) _exit(1);  // the attached main thread is served
    std::thread([&] {
      set_guarded_altstack(12 << 10);
      (void)p[2 * kPage];
      _exit(2);
    }).join();
    _exit(3);
  });
  EXPECT_TRUE(r.signaled() && r.signal() == SIGBUS) << r;
  EXPECT_NE(r.output.find("a self-service fill needs 32768 bytes of the alternate signal stack"), std::string::npos) << r;
}

}  // namespace
}  // namespace faultline
