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
  bool blocking = false;  // expected to be stopped in its blocking region
};

using SteadyClock = std::chrono::steady_clock;

// The state letter of a thread of this process ('R', 'S', ...) from /proc/self/task/<tid>/stat.
char thread_state(long tid) {
  std::ifstream f("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string line;
  std::getline(f, line);
  const auto paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() ? line[paren + 2] : '?';
}

// What one stop saw, filled by the for_each_stopped visitor.
struct StopCensus {
  const std::vector<std::unique_ptr<Worker>>* workers;
  unsigned seen[64] = {};         // per worker: how often it was visited
  unsigned wrong_blocking = 0;    // workers whose in_blocking_region is not the expected one
  unsigned extra = 0, extra_blocking = 0;  // threads that are not workers (the churn's)
  unsigned blocking = 0;          // total with in_blocking_region
  bool bad_range = false;
};

// Stops and resumes `n` threads (a third spinning, a third blocked in read() without telling anyone,
// a third blocked in read() inside a BlockingRegion) `rounds` times while other threads attach and
// exit. Each round checks that every worker was stopped exactly once, that exactly the workers in a
// blocking region were counted as blocking (plus at most the one churn thread, which may be waiting to
// detach), that no spinning thread makes progress while the world is stopped (watched for 250 us of the
// controller's steady clock), and that every spinning thread makes progress again after resume()
// (checked every 16th round).
void stop_resume_rounds(unsigned n, unsigned rounds) {
  if (n > 64) _exit(89);
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
    // TSan defers signals to a thread blocked in read(): such a thread never stops, so there every
    // reader waits in a blocking region.
    w->blocking = kind == 2 || (kind == 1 && kTsan);
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
          if (w->blocking) {
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
  // The readers must be asleep in read() before the first stop (a reader still on its way into its
  // blocking region would be stopped by the signal instead). Bounded: 30 s.
  const auto settle = SteadyClock::now() + std::chrono::seconds(30);
  for (unsigned i = 0; i < n; ++i) {
    if (i % 3 == 0) continue;
    while (thread_state(workers[i]->tid.load()) != 'S') {
      if (SteadyClock::now() > settle) _exit(94);
      std::this_thread::yield();
    }
  }
  std::thread churn([&] {  // threads that attach and exit all along
    while (!quit.load()) {
      std::thread t([] {
        auto a = attach_thread();
        if (!a.ok()) _exit(93);
      });
      t.join();
    }
  });
  unsigned expected_blocking = 0;
  for (const auto& w : workers) expected_blocking += w->blocking;
  for (unsigned round = 0; round < rounds; ++round) {
    if (auto r = world::stop(); !r) {
      std::fprintf(stderr, "round %u: %s\n", round, r.error().message().c_str());
      _exit(1);
    }
    StopCensus c;
    c.workers = &workers;
    if (!world::for_each_stopped(
             [](const world::StoppedThread& t, void* d) {
               auto* cc = static_cast<StopCensus*>(d);
               cc->blocking += t.in_blocking_region;
               if (t.stack_lo >= t.stack_hi || t.context == nullptr) cc->bad_range = true;
               const auto& ws = *cc->workers;
               for (std::size_t i = 0; i < ws.size(); ++i) {
                 if (ws[i]->tid.load() != t.tid) continue;
                 cc->seen[i]++;
                 cc->wrong_blocking += t.in_blocking_region != ws[i]->blocking;
                 return;
               }
               cc->extra++;
               cc->extra_blocking += t.in_blocking_region;
             },
             &c)
             .ok()) {
      _exit(3);
    }
    if (c.bad_range) _exit(2);
    for (unsigned i = 0; i < n; ++i) {
      if (c.seen[i] != 1) {
        std::fprintf(stderr, "round %u: worker %u visited %u times\n", round, i, c.seen[i]);
        _exit(4);
      }
    }
    if (c.wrong_blocking != 0 || c.extra > 1 || c.blocking != expected_blocking + c.extra_blocking) {
      std::fprintf(stderr, "round %u: %u counted as blocking, expected %u (+%u of %u churn threads); %u workers wrong\n",
                   round, c.blocking, expected_blocking, c.extra_blocking, c.extra, c.wrong_blocking);
      _exit(8);
    }
    std::uint64_t before[64];
    for (unsigned i = 0; i < n; ++i) before[i] = workers[i]->progress.load();
    // Watch the spinners for 250 us of the controller's clock: a thread that still ran would count.
    const auto watch = SteadyClock::now();
    while (SteadyClock::now() - watch < std::chrono::microseconds(250)) {
    }
    for (unsigned i = 0; i < n; i += 3) {
      if (workers[i]->progress.load() != before[i]) {
        std::fprintf(stderr, "round %u: thread %u ran while stopped\n", round, i);
        _exit(5);
      }
    }
    if (!world::resume().ok()) _exit(6);
    // Resumed: every spinner runs again (checked every 16th round and after the last, to keep the
    // rounds quick; bounded generously: on 2 CPUs with 64 threads a spinner may wait several slices).
    if (round % 16 != 15 && round + 1 != rounds) continue;
    const auto deadline = SteadyClock::now() + std::chrono::seconds(30);
    for (unsigned i = 0; i < n; i += 3) {
      while (workers[i]->progress.load() == before[i]) {
        if (SteadyClock::now() > deadline) {
          std::fprintf(stderr, "round %u: thread %u did not run again after resume()\n", round, i);
          _exit(9);
        }
        std::this_thread::yield();
      }
    }
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

void foreign_handler(int, siginfo_t*, void*) {}

// Another component takes the stop signal after a first stop: the next stop says so at once instead of
// waiting for acknowledgements that never come.
TEST(World, StopRefusesASignalTakenSinceTheLastStop) {
  ChildResult r = run_child([] {
    auto self = attach_thread();
    if (!self.ok()) _exit(90);
    if (!world::stop().ok() || !world::resume().ok()) _exit(1);
    install_handler(SIGRTMIN + 4, foreign_handler);  // faultline's default stop signal, taken by someone else
    std::atomic<bool> go{true};
    std::thread other([&] {
      auto a = attach_thread();
      while (go.load()) std::this_thread::yield();
    });
    world::StopOptions so;
    so.timeout = std::chrono::milliseconds(2000);
    auto s = world::stop(so);
    go = false;
    other.join();
    if (s.ok()) (void)world::resume();
    if (s.ok() || s.error().code() != Errc::already_exists) {
      std::fprintf(stderr, "%s\n", s.ok() ? "stopped" : s.error().message().c_str());
      _exit(2);
    }
  }, 30);
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
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

// stop() refuses a stop signal another handler owns (plain or SA_SIGINFO), and leaves that handler in
// place; with a free signal it works.
void someone_elses(int) {}
void someone_elses_info(int, siginfo_t*, void*) {}

TEST(World, StopRefusesASignalAnotherHandlerOwns) {
  ChildResult r = run_child([] {
    auto self = attach_thread();
    const int sig = SIGRTMIN + 4;  // the default stop signal
    install_plain_handler(sig, someone_elses);
    auto st = world::stop();
    if (st.ok() || st.error().code() != Errc::already_exists) _exit(1);
    struct sigaction cur {};
    sigaction(sig, nullptr, &cur);
    if (cur.sa_handler != someone_elses) _exit(2);  // still the owner's
    install_handler(sig, someone_elses_info);
    st = world::stop();
    if (st.ok() || st.error().code() != Errc::already_exists) _exit(3);
    sigaction(sig, nullptr, &cur);
    if (cur.sa_sigaction != someone_elses_info) _exit(4);
    if (world::stopped()) _exit(5);
    install_plain_handler(sig, SIG_DFL);
    if (!world::stop() || !world::resume()) _exit(6);  // free again: stop() takes it
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// Two threads that call stop() at once are serialised: each of their stops succeeds, never while the
// other holds the world stopped, and each stops the other (and a spinning thread) completely. Each
// round the two controllers meet at a barrier and call stop() together; unserialised, they would
// signal each other and both sleep in the stop handler forever (a watchdog reports that in 10 s).
struct Overlap {
  std::atomic<int> inside{0};       // controllers between stop() and resume()
  std::atomic<int> overlaps{0};
  std::atomic<int> missed{0};       // a stop that did not include the other controller or the spinner
  std::atomic<int> failures{0};
  std::atomic<int> spinner_moved{0};
  std::atomic<long> tid[3] = {0, 0, 0};  // two controllers, one spinner
  std::atomic<std::uint64_t> spin{0};
  std::atomic<int> arrived{0};      // the per-round barrier of the two controllers
  std::atomic<int> rounds_done{0};
};
constexpr int kRounds = 1000;

TEST(World, TwoThreadsStoppingAtOnceAreSerialised) {
#if defined(__SANITIZE_THREAD__)
  // The controller waiting for the other's stop sits in pthread_mutex_lock, where TSan does not deliver
  // asynchronous signals: it never answers the other's stop signal.
  GTEST_SKIP() << "TSan defers asynchronous signals in a thread waiting for a mutex";
#endif
  ChildResult r = run_child(
      [] {
        static Overlap o;
        std::atomic<bool> quit{false};
        std::atomic<int> ready{0}, done{0};
        std::thread spinner([&] {
          auto a = attach_thread();
          o.tid[2] = gettid_();
          ready++;
          while (!quit.load(std::memory_order_relaxed)) o.spin.fetch_add(1, std::memory_order_relaxed);
        });
        auto controller = [&](int me) {
          auto a = attach_thread();
          if (!a.ok()) _exit(90);
          o.tid[me] = gettid_();
          ready++;
          while (ready.load() < 3) std::this_thread::yield();
          for (int round = 0; round < kRounds; ++round) {
            // Both call stop() at the same moment: a barrier per round.
            o.arrived++;
            while (o.arrived.load() < 2 * (round + 1)) std::this_thread::yield();
            if (!world::stop()) {
              o.failures++;
              continue;
            }
            if (o.inside.fetch_add(1) != 0) o.overlaps++;
            struct Found {
              long want[2];
              int found = 0;
            } f{{o.tid[1 - me].load(), o.tid[2].load()}};
            (void)world::for_each_stopped(
                [](const world::StoppedThread& t, void* d) {
                  auto* ff = static_cast<Found*>(d);
                  ff->found += t.tid == ff->want[0] || t.tid == ff->want[1];
                },
                &f);
            if (f.found != 2) o.missed++;
            const std::uint64_t before = o.spin.load();
            const auto watch = std::chrono::steady_clock::now();
            while (std::chrono::steady_clock::now() - watch < std::chrono::microseconds(200)) {
            }
            if (o.spin.load() != before) o.spinner_moved++;
            o.inside.fetch_sub(1);
            if (!world::resume()) o.failures++;
            o.rounds_done++;
          }
          // Stay attached until both are done: the other's remaining stops must still find this one.
          done++;
          while (done.load() < 2) std::this_thread::yield();
        };
        std::thread a(controller, 0), b(controller, 1);
        // Two stops that signal each other at once would leave both controllers stopped forever: turn
        // that hang into a failure (no round completed in 10 s).
        auto last = std::chrono::steady_clock::now();
        for (int seen = 0; o.rounds_done.load() < 2 * kRounds;) {
          if (const int now = o.rounds_done.load(); now != seen) {
            seen = now;
            last = std::chrono::steady_clock::now();
          } else if (std::chrono::steady_clock::now() - last > std::chrono::seconds(10)) {
            std::fprintf(stderr, "no stop completed for 10 s after %d rounds: the controllers deadlocked\n", now);
            _exit(2);
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        a.join();
        b.join();
        quit = true;
        spinner.join();
        std::fprintf(stderr, "failures %d overlaps %d missed %d spinner moved %d\n", o.failures.load(),
                     o.overlaps.load(), o.missed.load(), o.spinner_moved.load());
        if (o.failures || o.overlaps || o.missed || o.spinner_moved) _exit(1);
      },
      120);
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
  if (kTsan) GTEST_SKIP() << kTsanDefersAsyncSignals;
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
  if (kTsan) GTEST_SKIP() << kTsanDefersAsyncSignals;
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
    for (int i = 0; i < kVecWords; ++i) {
      if (!roots.simd.count(table.vec[i])) {
        std::fprintf(stderr, "vector lane %d missing\n", i);
        _exit(7);
      }
    }
    if (!roots.stack.count(0x57AC'0000'1234'5678ull)) _exit(8);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

}  // namespace
}  // namespace faultline
