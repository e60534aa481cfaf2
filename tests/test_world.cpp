// tests/test_world.cpp: stop-the-world, root scanning, blocking regions, call injection, preemption.
#include <fcntl.h>
#include <sys/mman.h>
#include <gtest/gtest.h>
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

#include "child.hpp"
#include "faultline/inject.hpp"
#include "faultline/preempt.hpp"
#include "faultline/region.hpp"
#include "faultline/thread.hpp"
#include "faultline/trap.hpp"
#include "faultline/world.hpp"
#include "thread/state.hpp"

extern "C" {
void faultline_test_spin(const std::uint64_t* table);
extern char faultline_test_spin_loop[];
extern char faultline_test_spin_exit[];
}

namespace faultline {
namespace {

using test::ChildResult;
using test::run_child;

// The register table faultline_test_spin loads (see tests/spin_x86_64.S).
constexpr int kGprs = 15;
constexpr std::uint64_t kFlags = 0x8D7;  // CF PF AF ZF SF OF and the reserved bit 1
constexpr int kGregOrder[kGprs] = {REG_RAX, REG_RBX, REG_RCX, REG_RDX, REG_RSI, REG_RDI, REG_RBP, REG_R8,
                                   REG_R9,  REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15};
struct SpinTable {
  std::uint64_t gpr[kGprs];
  std::uint64_t xmm[32];
  std::uint64_t flags;
};
static_assert(sizeof(SpinTable) == 384);

SpinTable make_table(std::uint64_t seed) {
  SpinTable t{};
  for (int i = 0; i < kGprs; ++i) t.gpr[i] = 0x5150'0000'0000'0000ull ^ (seed << 32) ^ (0x1111ull * (i + 1));
  for (int i = 0; i < 32; ++i) t.xmm[i] = 0x51D0'0000'0000'0000ull ^ (seed << 32) ^ (0x2222ull * (i + 1));
  t.flags = kFlags;
  return t;
}

// A signal handler that ends faultline_test_spin (moves the PC to its exit) once it spins.
std::atomic<int> g_exited{0};
void exit_spin_handler(int, siginfo_t*, void* ucv) {
  auto* uc = static_cast<ucontext_t*>(ucv);
  if (reinterpret_cast<char*>(uc->uc_mcontext.gregs[REG_RIP]) == faultline_test_spin_loop) {
    uc->uc_mcontext.gregs[REG_RIP] = reinterpret_cast<greg_t>(faultline_test_spin_exit);
    g_exited = 1;
  }
}

void install_handler(int sig, void (*fn)(int, siginfo_t*, void*)) {
  struct sigaction sa {};
  sa.sa_sigaction = fn;
  sa.sa_flags = SA_SIGINFO;
  sigaction(sig, &sa, nullptr);
}

// Sends `sig` to `tid` until `done` (bounded: about 20 s).
template <class Pred>
bool signal_until(long tid, int sig, Pred done) {
  for (int i = 0; i < 20000 && !done(); ++i) {
    syscall(SYS_tgkill, getpid(), tid, sig);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return done();
}

long gettid_() { return syscall(SYS_gettid); }

#if defined(__SANITIZE_THREAD__)
constexpr bool kTsan = true;
#else
constexpr bool kTsan = false;
#endif

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
    auto reg = reserve_region(static_cast<std::size_t>(sysconf(_SC_PAGESIZE)), o);
    if (!reg.ok()) _exit(90);
    std::thread t([&] {
      auto a = attach_thread();
      static_cast<volatile char*>(reg->data())[0] = 1;  // faults; the barrier spins
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

// --- call injection --------------------------------------------------------------------------------

std::atomic<int> g_injected{0};
std::atomic<int> g_inject_status{-1};
std::atomic<int> g_fn_ran{0};
std::atomic<int> g_regs_ok{-1};
const SpinTable* g_table = nullptr;

void injected_fn(void* arg) {
  // Ordinary code: allocation, the C library, floating point and vector work (clobbering xmm).
  std::vector<double> v(4096);
  std::iota(v.begin(), v.end(), 1.0);
  double sum = 0;
  for (double x : v) sum += std::sqrt(x);
  std::string s = std::to_string(sum);
  std::vector<char> big(1 << 16);
  std::memset(big.data(), 0x5a, big.size());
  auto* count = static_cast<std::atomic<int>*>(arg);
  count->fetch_add(s.empty() ? 0 : 1);
}

void inject_handler(int sig, siginfo_t* si, void* ucv) {
  FaultContext ctx(sig, si, static_cast<ucontext_t*>(ucv));
  if (reinterpret_cast<char*>(ctx.pc()) != faultline_test_spin_loop || g_injected.load() != 0) return;
  g_injected = 1;
  g_inject_status = static_cast<int>(inject_call(ctx, injected_fn, &g_fn_ran));
}

void check_then_exit_handler(int, siginfo_t*, void* ucv) {
  auto* uc = static_cast<ucontext_t*>(ucv);
  if (reinterpret_cast<char*>(uc->uc_mcontext.gregs[REG_RIP]) != faultline_test_spin_loop) return;
  bool ok = true;
  for (int i = 0; i < kGprs; ++i) {
    if (static_cast<std::uint64_t>(uc->uc_mcontext.gregs[kGregOrder[i]]) != g_table->gpr[i]) ok = false;
  }
  const auto* xmm = reinterpret_cast<const std::uint64_t*>(uc->uc_mcontext.fpregs->_xmm);
  for (int i = 0; i < 16; ++i) {
    if (xmm[2 * i] != g_table->xmm[2 * i] || xmm[2 * i + 1] != g_table->xmm[2 * i + 1]) ok = false;
  }
  if ((static_cast<std::uint64_t>(uc->uc_mcontext.gregs[REG_EFL]) & 0xCD5) != (kFlags & 0xCD5)) ok = false;
  g_regs_ok = ok ? 1 : 0;
  uc->uc_mcontext.gregs[REG_RIP] = reinterpret_cast<greg_t>(faultline_test_spin_exit);
}

TEST(Inject, CallRunsOrdinaryCodeAndEveryRegisterSurvives) {
#if defined(__SANITIZE_THREAD__)
  // TSan defers asynchronous signals to its own safe points and runs the handler on a copy of the
  // context: a loop of plain instructions never stops, and changes to the context are lost.
  GTEST_SKIP() << "TSan defers asynchronous signals and discards changes to their context";
#endif
  ChildResult r = run_child([] {
    install_handler(SIGUSR1, inject_handler);
    install_handler(SIGUSR2, check_then_exit_handler);
    static SpinTable table = make_table(3);
    g_table = &table;
    std::atomic<long> tid{0};
    std::thread t([&] {
      auto a = attach_thread();
      tid = gettid_();
      faultline_test_spin(table.gpr);
    });
    while (tid.load() == 0) std::this_thread::yield();
    if (!signal_until(tid.load(), SIGUSR1, [] { return g_injected.load() != 0; })) _exit(1);
    if (g_inject_status.load() != static_cast<int>(InjectStatus::ok)) _exit(2);
    for (long spin = 0; g_fn_ran.load() == 0; ++spin) {
      if (spin > 4'000'000'000L) _exit(3);
    }
    // The loop goes on, with every register as it was.
    if (!signal_until(tid.load(), SIGUSR2, [] { return g_regs_ok.load() != -1; })) _exit(4);
    t.join();
    if (g_regs_ok.load() != 1) _exit(5);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

TEST(Inject, RefusesWithoutAContext) {
  FaultContext none(nullptr);
  EXPECT_EQ(inject_call(none, injected_fn, nullptr), InjectStatus::no_context);
  EXPECT_STREQ(inject_status_name(InjectStatus::on_altstack), "on_altstack");
}

// --- preemption ------------------------------------------------------------------------------------

// Green threads on one OS thread. Each runs an endless CPU-bound loop; only preemption (a wall-clock
// budget whose handler injects a call to the scheduler) switches between them.
struct Green {
  ucontext_t ctx;
  std::vector<char> stack;
  std::atomic<std::uint64_t> counter{0};
  unsigned slices = 0;
};
Green g_green[3];
ucontext_t g_main_ctx;
int g_current = -1;
std::atomic<bool> g_sched_done{false};

void preempt_handler(FaultContext& ctx, void*);

void arm() {
  if (!preempt::enable(std::chrono::microseconds(500), preempt_handler, nullptr, preempt::Clock::wall)) _exit(40);
}

void schedule(void*) {
  preempt::disable();
  const int from = g_current;
  bool all = true;
  for (auto& g : g_green) all = all && g.slices >= 5;
  if (all) {
    g_sched_done = true;
    swapcontext(&g_green[from].ctx, &g_main_ctx);  // never resumed
  }
  const int to = (from + 1) % 3;
  g_current = to;
  g_green[to].slices++;
  swapcontext(&g_green[from].ctx, &g_green[to].ctx);
  arm();  // resumed: this green thread's new slice
}

void preempt_handler(FaultContext& ctx, void*) {
  if (inject_call(ctx, schedule, nullptr) != InjectStatus::ok) _exit(41);
}

void green_body(int i) {
  arm();
  for (;;) g_green[i].counter.fetch_add(1, std::memory_order_relaxed);  // never yields
}

TEST(Preempt, SchedulerSwitchesAwayFromAnEndlessLoop) {
#if defined(__SANITIZE_THREAD__)
  // TSan defers asynchronous signals to its own safe points and runs the handler on a copy of the
  // context: a loop of plain instructions never stops, and changes to the context are lost.
  GTEST_SKIP() << "TSan defers asynchronous signals and discards changes to their context";
#endif
  ChildResult r = run_child([] {
    auto self = attach_thread();
    for (int i = 0; i < 3; ++i) {
      Green& g = g_green[i];
      g.stack.resize(256 << 10);
      getcontext(&g.ctx);
      g.ctx.uc_stack.ss_sp = g.stack.data();
      g.ctx.uc_stack.ss_size = g.stack.size();
      g.ctx.uc_link = nullptr;
      makecontext(&g.ctx, reinterpret_cast<void (*)()>(green_body), 1, i);
    }
    g_current = 0;
    g_green[0].slices = 1;
    swapcontext(&g_main_ctx, &g_green[0].ctx);
    preempt::disable();
    if (!g_sched_done.load()) _exit(1);
    for (auto& g : g_green) {
      if (g.counter.load() == 0 || g.slices < 5) _exit(2);
    }
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

std::atomic<int> g_preempted{0};
void count_preemption(FaultContext&, void*) { g_preempted++; }

TEST(Preempt, ExpiryWhileDisabledIsDeliveredAtTheNextEnable) {
  ChildResult r = run_child([] {
    auto self = attach_thread();
    if (!preempt::enable(std::chrono::microseconds(200), count_preemption)) _exit(1);
    preempt::disable();
    // Wait until the budget has expired while disabled (the thread's pending flag).
    const thread::ThreadState* ts = thread::current();
    for (long spin = 0; ts->preempt_pending.load() == 0; ++spin) {
      if (spin > 4'000'000'000L) _exit(2);
    }
    if (g_preempted.load() != 0) _exit(3);
    if (!preempt::enable(std::chrono::seconds(100), count_preemption)) _exit(4);
    if (g_preempted.load() != 1) _exit(5);  // delivered by enable() itself
    if (preempt::enabled()) _exit(6);       // a delivered budget is spent
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

TEST(Preempt, BadArgumentsAndUnattachedThreads) {
  ChildResult r = run_child([] {
    std::thread t([] {
      auto e = preempt::enable(std::chrono::milliseconds(1), count_preemption);
      if (e.ok() || e.error().code() != Errc::not_installed) _exit(1);
    });
    t.join();
    auto self = attach_thread();
    if (preempt::enable(std::chrono::milliseconds(0), count_preemption).ok()) _exit(2);
    if (preempt::enable(std::chrono::milliseconds(1), nullptr).ok()) _exit(3);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

std::size_t proc_timers() {
  std::ifstream f("/proc/self/timers");
  std::size_t n = 0;
  for (std::string line; std::getline(f, line);) n += line.rfind("ID:", 0) == 0;
  return n;
}

TEST(Preempt, ThreadsThatExitLeaveNoTimersBehind) {
  ChildResult r = run_child([] {
    const std::size_t before = preempt::timer_count(), proc_before = proc_timers();
    for (int round = 0; round < 10; ++round) {
      std::vector<std::thread> ts;
      for (int i = 0; i < 20; ++i) {
        ts.emplace_back([] {
          auto a = attach_thread();
          if (!preempt::enable(std::chrono::seconds(100), count_preemption, nullptr, preempt::Clock::cpu_time)) _exit(1);
          if (!preempt::enable(std::chrono::seconds(100), count_preemption, nullptr, preempt::Clock::wall)) _exit(2);
        });  // exits attached: the exit hook detaches and deletes the timers
      }
      for (auto& t : ts) t.join();
    }
    if (preempt::timer_count() != before) _exit(3);
    if (proc_timers() != proc_before) _exit(4);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

}  // namespace
}  // namespace faultline
