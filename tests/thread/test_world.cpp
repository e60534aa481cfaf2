// tests/thread/test_world.cpp: stop-the-world and resume, lost and unanswered stop signals, threads in
// fault handlers and blocking regions, root scanning.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>
#include <numeric>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "faultline/inject.hpp"
#include "faultline/preempt.hpp"
#include "faultline/region.hpp"
#include "faultline/thread.hpp"
#include "faultline/trap.hpp"
#include "faultline/world.hpp"
#include "support/child.hpp"
#include "support/pages.hpp"
#include "support/spin.hpp"
#include "thread/state.hpp"

namespace faultline {
namespace {

using namespace test;  // the spin table and its helpers

// --- stop and resume -------------------------------------------------------------------------------

struct Worker {
  std::atomic<std::uint64_t> progress{0};
  std::atomic<long> tid{0};
};

// Stops and resumes `n` threads (a third spinning, a third blocked in read() without telling anyone,
// a third blocked in read() inside a BlockingRegion) `rounds` times while other threads attach and
// exit. While stopped, no spinning thread may make progress.
void stop_resume_rounds(unsigned n, unsigned rounds) {
  auto self = attach_thread();
  if (!self.ok()) _exit(90);
  int pipefd[2];
  if (pipe(pipefd) != 0) _exit(91);
  std::atomic<bool> quit{false};
  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<std::thread> threads;
  std::atomic<unsigned> ready{0};
  for (unsigned i = 0; i < n; ++i) {
    workers.push_back(std::make_unique<Worker>());
    Worker* w = workers.back().get();
    const unsigned kind = i % 3;
    threads.emplace_back([&, w, kind] {
      auto a = attach_thread();
      if (!a.ok()) _exit(92);
      w->tid = gettid_();
      ready++;
      if (kind == 0) {
        while (!quit.load(std::memory_order_relaxed)) w->progress.fetch_add(1, std::memory_order_relaxed);
      } else {
        char c;
        for (;;) {
          ssize_t r;
          if (kind == 2 || kTsan) {  // TSan defers signals to a thread blocked in read(): it never stops
            BlockingRegion blocking;
            r = read(pipefd[0], &c, 1);
          } else {
            r = read(pipefd[0], &c, 1);
          }
          if (r <= 0 || c == 'q') break;
          w->progress++;
        }
      }
    });
  }
  while (ready.load() < n) std::this_thread::yield();
  std::thread churn([&] {  // threads that attach and exit all along
    while (!quit.load()) {
      std::thread t([] {
        auto a = attach_thread();
        if (!a.ok()) _exit(93);
      });
      t.join();
    }
  });
  struct Count {
    unsigned threads = 0, blocking = 0;
  };
  for (unsigned round = 0; round < rounds; ++round) {
    if (auto r = world::stop(); !r) {
      std::fprintf(stderr, "round %u: %s\n", round, r.error().message().c_str());
      _exit(1);
    }
    Count c;
    if (!world::for_each_stopped(
             [](const world::StoppedThread& t, void* d) {
               auto* cc = static_cast<Count*>(d);
               cc->threads++;
               cc->blocking += t.in_blocking_region;
               if (t.stack_lo >= t.stack_hi || t.context == nullptr) _exit(2);
             },
             &c)
             .ok()) {
      _exit(3);
    }
    if (c.threads < n) {  // every worker, plus possibly a churn thread
      std::fprintf(stderr, "round %u: %u threads stopped, expected at least %u\n", round, c.threads, n);
      _exit(4);
    }
    std::uint64_t before[64];
    for (unsigned i = 0; i < n; ++i) before[i] = workers[i]->progress.load();
    for (int spin = 0; spin < 20000; ++spin) asm volatile("");
    for (unsigned i = 0; i < n; i += 3) {
      if (workers[i]->progress.load() != before[i]) {
        std::fprintf(stderr, "round %u: thread %u ran while stopped\n", round, i);
        _exit(5);
      }
    }
    if (!world::resume().ok()) _exit(6);
  }
  quit = true;
  for (unsigned i = 0; i < n; ++i) {
    if (write(pipefd[1], "q", 1) != 1) _exit(7);
  }
  for (auto& t : threads) t.join();
  churn.join();
}

TEST(World, StopResumeOneThreadThousandsOfTimes) {
  ChildResult r = run_child([] { stop_resume_rounds(1, 3000); }, 120);
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

TEST(World, StopResumeEightThreadsThousandsOfTimes) {
  ChildResult r = run_child([] { stop_resume_rounds(8, 2000); }, 120);
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

TEST(World, StopResumeSixtyFourThreads) {
  ChildResult r = run_child([] { stop_resume_rounds(64, 200); }, 120);
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

TEST(World, LostSignalIsRecoveredByResend) {
  ChildResult r = run_child([] {
    auto self = attach_thread();
    std::atomic<bool> quit{false}, ready{false};
    std::thread t([&] {
      auto a = attach_thread();
      ready = true;
      while (!quit.load()) {
      }
    });
    while (!ready.load()) std::this_thread::yield();
    world::testing::drop_next_signals(1);
    const auto sent = world::signals_sent();
    if (!world::stop(world::StopOptions{0, std::chrono::milliseconds(5), std::chrono::milliseconds(5000)})) _exit(1);
    if (world::signals_sent() - sent < 2) _exit(2);  // the first was dropped, a resend stopped it
    if (!world::resume()) _exit(3);
    quit = true;
    t.join();
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

TEST(World, ThreadThatNeverAnswersIsNamed) {
  ChildResult r = run_child([] {
    auto self = attach_thread();
    std::atomic<bool> quit{false}, ready{false};
    std::atomic<long> tid{0};
    std::thread t([&] {
      auto a = attach_thread();
      sigset_t all;
      sigfillset(&all);
      pthread_sigmask(SIG_BLOCK, &all, nullptr);  // the stop signal never gets through
      tid = gettid_();
      ready = true;
      while (!quit.load()) {
      }
    });
    while (!ready.load()) std::this_thread::yield();
    auto st = world::stop(world::StopOptions{0, std::chrono::milliseconds(5), std::chrono::milliseconds(100)});
    if (st.ok() || st.error().code() != Errc::timed_out) _exit(1);
    std::fprintf(stderr, "%s\n", st.error().message().c_str());
    if (st.error().message().find("thread " + std::to_string(tid.load())) == std::string::npos) _exit(2);
    if (world::stopped() || world::resume().ok()) _exit(3);  // nothing left stopped
    quit = true;
    t.join();
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
  EXPECT_NE(r.output.find("did not stop within 100 ms"), std::string::npos) << r;
}

TEST(World, MisuseGetsClearErrors) {
  ChildResult r = run_child([] {
    std::thread t([] {  // not attached
      auto st = world::stop();
      if (st.ok() || st.error().code() != Errc::not_installed) _exit(1);
    });
    t.join();
    auto self = attach_thread();
    if (world::resume().ok()) _exit(2);
    if (world::scan_roots([](const std::uintptr_t*, const std::uintptr_t*, world::RootKind, long, void*) {},
                          nullptr)
            .ok()) {
      _exit(3);
    }
    if (!world::stop()) _exit(4);
    auto again = world::stop();
    if (again.ok() || again.error().code() != Errc::busy) _exit(5);
    if (!world::resume()) _exit(6);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// A thread stopped while it runs a fault handler (on its alternate stack) stops like any other, and
// its alternate stack and its own stack are both reported.
std::atomic<int> g_in_barrier{0};
std::atomic<int> g_leave_barrier{0};
Disposition slow_barrier(FaultContext& ctx, const RegionInfo& r, void*) {
  g_in_barrier = 1;
  while (g_leave_barrier.load() == 0) {
  }
  mprotect(reinterpret_cast<void*>(r.base), r.size, PROT_READ | PROT_WRITE);
  (void)ctx;
  return Disposition::resolved;
}

TEST(World, ThreadInsideAFaultHandlerStopsToo) {
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "TSan defers asynchronous signals and discards changes to their context";
#endif
  ChildResult r = run_child([] {
    auto self = attach_thread();
    RegionOptions o;
    o.name = "slow-barrier";
    o.policy = Policy::barrier;
    o.barrier = slow_barrier;
    auto reg = must_reserve(static_cast<std::size_t>(sysconf(_SC_PAGESIZE)), o);
    std::thread t([&] {
      auto a = attach_thread();
      static_cast<volatile char*>(reg.data())[0] = 1;  // faults; the barrier spins
    });
    while (g_in_barrier.load() == 0) std::this_thread::yield();
    if (!world::stop()) _exit(1);
    struct Seen {
      bool on_alt = false;
      bool stack = false;
    } seen;
    if (!world::for_each_stopped(
             [](const world::StoppedThread& st, void* d) {
               auto* s = static_cast<Seen*>(d);
               s->on_alt = st.altstack_hi != 0 && st.altstack_lo < st.altstack_hi;
               s->stack = st.stack_lo < st.stack_hi;
             },
             &seen)
             .ok()) {
      _exit(2);
    }
    if (!world::resume()) _exit(3);
    if (!seen.on_alt || !seen.stack) _exit(4);
    g_leave_barrier = 1;
    t.join();
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// --- roots -----------------------------------------------------------------------------------------

// Stacks hold words ASan considers off limits (redzones of other frames): a conservative scanner reads
// them unchecked, as Boehm GC does.
__attribute__((no_sanitize("address"))) std::uint64_t load_word(const std::uintptr_t* p) { return *p; }

struct Roots {
  std::set<std::uint64_t> registers, simd, stack;
};

TEST(World, ScanRootsSeesRegistersSimdLanesAndStacks) {
#if defined(__SANITIZE_THREAD__)
  // TSan defers asynchronous signals to its own safe points and runs the handler on a copy of the
  // context: a loop of plain instructions never stops, and changes to the context are lost.
  GTEST_SKIP() << "TSan defers asynchronous signals and discards changes to their context";
#endif
  ChildResult r = run_child([] {
    auto self = attach_thread();
    install_handler(SIGUSR2, exit_spin_handler);
    static SpinTable table = make_table(7);
    std::atomic<long> tid{0};
    std::thread t([&] {
      auto a = attach_thread();
      volatile std::uint64_t on_stack = 0x57AC'0000'1234'5678ull;  // a root on the stopped thread's stack
      tid = gettid_();
      faultline_test_spin(table.gpr);
      (void)on_stack;
    });
    while (tid.load() == 0) std::this_thread::yield();
    // Wait until it spins (its PC is in the loop) before stopping.
    Roots roots;
    for (int attempt = 0;; ++attempt) {
      if (attempt > 2000) _exit(1);
      if (!world::stop()) _exit(2);
      bool spinning = false;
      (void)world::for_each_stopped(
          [](const world::StoppedThread& s, void* d) {
            if (reinterpret_cast<char*>(s.context->pc()) == faultline_test_spin_loop) *static_cast<bool*>(d) = true;
          },
          &spinning);
      if (spinning) {
        (void)world::scan_roots(
            [](const std::uintptr_t* b, const std::uintptr_t* e, world::RootKind kind, long, void* d) {
              auto* rr = static_cast<Roots*>(d);
              auto& set = kind == world::RootKind::registers ? rr->registers
                          : kind == world::RootKind::simd    ? rr->simd
                                                             : rr->stack;
              for (const std::uintptr_t* p = b; p < e; ++p) set.insert(load_word(p));  // allocating: fine in a test
            },
            &roots);
        if (!world::resume()) _exit(3);
        break;
      }
      if (!world::resume()) _exit(4);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (!signal_until(tid.load(), SIGUSR2, [] { return g_exited.load() != 0; })) _exit(5);
    t.join();
    for (int i = 0; i < kGprs; ++i) {
      if (!roots.registers.count(table.gpr[i])) {
        std::fprintf(stderr, "register %d value missing\n", i);
        _exit(6);
      }
    }
    for (int i = 0; i < 32; ++i) {
      if (!roots.simd.count(table.xmm[i])) {
        std::fprintf(stderr, "xmm lane %d missing\n", i);
        _exit(7);
      }
    }
    if (!roots.stack.count(0x57AC'0000'1234'5678ull)) _exit(8);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

}  // namespace
}  // namespace faultline
