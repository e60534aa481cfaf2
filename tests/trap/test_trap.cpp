// tests/test_trap.cpp: installing the dispatcher, handler registration (and removal that gives up on a
// handler that never returns), nesting, stack overflow, errno, and SIGFPE/SIGILL/SIGTRAP on request.
#include <gtest/gtest.h>
#include <pthread.h>
#include <setjmp.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "support/child.hpp"
#include "support/signals.hpp"
#include "faultline/report.hpp"
#include "faultline/thread.hpp"
#include "faultline/trap.hpp"

namespace faultline {
namespace {

using namespace test;  // tests/support/

bool current_is_faultline(int sig) {
  struct sigaction cur {};
  sigaction(sig, nullptr, &cur);
  struct sigaction probe {};
  // faultline's handler is SA_SIGINFO with SA_ONSTACK|SA_NODEFER: recognise it by its flags, since its
  // address is internal.
  return (cur.sa_flags & SA_SIGINFO) && (cur.sa_flags & SA_NODEFER) && (cur.sa_flags & SA_ONSTACK) &&
         cur.sa_sigaction != probe.sa_sigaction;
}

void marker_handler(int) {}

TEST(Install, InstallUninstallInstallRestoresExactly) {
  ChildResult r = run_child([] {
    install_plain_handler(SIGSEGV, marker_handler, SA_RESTART, {SIGUSR2});
    for (int round = 0; round < 3; ++round) {
      if (!install().ok()) _exit(10 + round);
      if (!install().ok()) _exit(20 + round);  // idempotent
      if (!installed() || !current_is_faultline(SIGSEGV) || !current_is_faultline(SIGBUS)) _exit(30 + round);
      if (!uninstall().ok()) _exit(40 + round);
      struct sigaction cur {};
      sigaction(SIGSEGV, nullptr, &cur);
      if (cur.sa_handler != marker_handler || !(cur.sa_flags & SA_RESTART) || !sigismember(&cur.sa_mask, SIGUSR2)) {
        _exit(50 + round);
      }
      if (installed()) _exit(60 + round);
    }
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

TEST(Install, RejectsBadSignalSets) {
  InstallOptions o;
  o.signals = 0;
  auto r = install(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Errc::invalid_argument);
  o.signals = 1u << 20;
  EXPECT_EQ(install(o).error().code(), Errc::invalid_argument);
  EXPECT_FALSE(installed());
}

TEST(Install, InstallFromManyThreadsAtOnce) {
  ChildResult r = run_child([] {
    std::thread ts[8];
    std::atomic<int> failures{0};
    for (auto& t : ts) t = std::thread([&] { failures += install().ok() ? 0 : 1; });
    for (auto& t : ts) t.join();
    if (failures != 0 || !current_is_faultline(SIGSEGV)) _exit(1);
    if (!uninstall().ok()) _exit(2);
    struct sigaction cur {};
    sigaction(SIGSEGV, nullptr, &cur);
    if (cur.sa_handler != SIG_DFL) _exit(3);  // never chained to itself
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

void newcomer(int sig, siginfo_t*, void*) { _exit(sig == SIGSEGV ? 44 : 45); }

TEST(Override, DetectsLaterSigactionAndReasserts) {
  Page page(PROT_NONE);
  ChildResult r = run_child([&] {
    if (!install().ok()) _exit(90);
    if (overridden() != 0) _exit(1);
    install_handler(SIGSEGV, newcomer);
    if (overridden() != trap_segv) _exit(2);
    auto u = uninstall();
    if (u.ok() || u.error().code() != Errc::overridden) _exit(3);
    if (u.error().message().find("SEGV") == std::string::npos) _exit(4);
    if (!reassert().ok() || overridden() != 0 || !current_is_faultline(SIGSEGV)) _exit(5);
    // The newcomer is now the previous action: an unresolved fault reaches it.
    *reinterpret_cast<volatile char*>(page.get()) = 1;
    _exit(6);
  });
  EXPECT_EQ(r.exit_code(), 44) << r;
}

// The child's PROT_NONE page (4096 bytes), which the handlers below resolve by opening it (in signal
// context: mprotect only).
char* g_page = nullptr;
Disposition open_page() {
  mprotect(g_page, 4096, PROT_READ | PROT_WRITE);
  return Disposition::resolved;
}

// Runs `body` in a child with faultline installed and g_page a fresh PROT_NONE page.
ChildResult run_child_with_a_page(const std::function<void()>& body, unsigned timeout_s = 60) {
  Page page(PROT_NONE);
  return run_child([&] {
    g_page = page.get();
    if (!install().ok()) _exit(90);
    body();
  }, timeout_s);
}

struct Counts {
  std::atomic<int> calls{0};
  int errno_in_handler = 0;
};
Counts* g_counts = nullptr;

Disposition resolve_page(FaultContext& ctx, void*) {
  g_counts->calls++;
  if (ctx.address() < reinterpret_cast<std::uintptr_t>(g_page) ||
      ctx.address() >= reinterpret_cast<std::uintptr_t>(g_page) + 4096) {
    return Disposition::declined;
  }
  // Clobber errno the way real handler code does (close(-1) fails with EBADF).
  close(-1);
  g_counts->errno_in_handler = errno;
  return open_page();
}

TEST(Dispatch, ErrnoSurvivesAResolvedFaultAndCountersCount) {
  Shared<Counts> counts;
  ChildResult r = run_child_with_a_page([&] {
    g_counts = &*counts;
    if (!add_handler(resolve_page, nullptr).ok()) _exit(90);
    TrapCounters before = counters(SIGSEGV);
    errno = 1234;
    g_page[100] = 7;  // faults, resolved
    int after = errno;
    if (after != 1234) _exit(1);
    if (g_page[100] != 7) _exit(2);
    TrapCounters c = counters(SIGSEGV);
    if (c.seen != before.seen + 1 || c.resolved != before.resolved + 1 || c.passed != before.passed) _exit(3);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
  EXPECT_EQ(counts->calls.load(), 1);
  EXPECT_EQ(counts->errno_in_handler, EBADF);
}

Disposition decline_all(FaultContext&, void*) { return Disposition::declined; }

TEST(Handlers, RegistrationErrorsAreClear) {
  auto r = add_handler(nullptr, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Errc::invalid_argument);
  EXPECT_EQ(add_handler(decline_all, nullptr, 0).error().code(), Errc::invalid_argument);
  EXPECT_EQ(add_handler(decline_all, nullptr, 1u << 30).error().code(), Errc::invalid_argument);
  EXPECT_EQ(remove_handler(HandlerId{}).error().code(), Errc::not_found);
  auto id = add_handler(decline_all, nullptr);
  ASSERT_TRUE(id.ok());
  EXPECT_TRUE(remove_handler(*id).ok());
  EXPECT_EQ(remove_handler(*id).error().code(), Errc::not_found) << "a stale id is rejected";
}

TEST(Handlers, CapacityIsEnforcedAndSlotsAreReused) {
  std::vector<HandlerId> ids;
  Result<HandlerId> last = Error(Errc::ok, "");
  for (;;) {
    last = add_handler(decline_all, nullptr);
    if (!last.ok()) break;
    ids.push_back(*last);
  }
  EXPECT_EQ(last.error().code(), Errc::no_space);
  EXPECT_GE(ids.size(), 60u);  // other tests in this process may hold a few
  for (auto id : ids) EXPECT_TRUE(remove_handler(id).ok());
  auto again = add_handler(decline_all, nullptr);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(remove_handler(*again).ok());
}

// A handler that is removed while another thread keeps faulting: remove_handler waits for handlers in
// flight, and afterwards the handler is never called again.
struct RemoveState {
  std::atomic<int> calls_after_remove{0};
  std::atomic<bool> removed{false};
};
RemoveState* g_remove = nullptr;

Disposition ping_handler(FaultContext& ctx, void*) {
  if (ctx.address() != reinterpret_cast<std::uintptr_t>(g_page)) return Disposition::declined;
  if (g_remove->removed.load()) g_remove->calls_after_remove++;
  return open_page();
}
Disposition ping_fallback(FaultContext& ctx, void*) {
  if (ctx.address() != reinterpret_cast<std::uintptr_t>(g_page)) return Disposition::declined;
  return open_page();
}

TEST(Handlers, RemoveWaitsForHandlersInFlight) {
  Shared<RemoveState> st;
  ChildResult r = run_child_with_a_page([&] {
    g_remove = &*st;
    // Handlers are asked in registration order: ping_handler first, the fallback after it is gone.
    auto id = add_handler(ping_handler, nullptr);
    auto fallback = add_handler(ping_fallback, nullptr);
    if (!id.ok() || !fallback.ok()) _exit(91);
    std::atomic<bool> stop{false};
    std::thread faulter([&] {
      while (!stop.load()) {
        mprotect(g_page, 4096, PROT_NONE);
        *reinterpret_cast<volatile char*>(g_page) = 1;
      }
    });
    for (int i = 0; i < 200; ++i) std::this_thread::yield();
    if (!remove_handler(*id).ok()) _exit(92);
    st->removed = true;
    for (int i = 0; i < 200; ++i) std::this_thread::yield();
    stop = true;
    faulter.join();
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
  EXPECT_EQ(st->calls_after_remove.load(), 0);
}

// remove_handler() waits for handlers in flight, but not forever: a handler that never returns (here it
// sleeps until told to stop, in another thread) makes it give up with Errc::timed_out after its 10 s
// bound instead of hanging. (This test takes 10 s.)
struct StuckState {
  std::atomic<int> inside{0};
  std::atomic<int> release{0};
};
StuckState* g_stuck = nullptr;

Disposition stuck_handler(FaultContext& ctx, void*) {
  if (ctx.address() != reinterpret_cast<std::uintptr_t>(g_page)) return Disposition::declined;
  g_stuck->inside = 1;
  while (g_stuck->release.load() == 0) {
    struct timespec ms {0, 1'000'000};
    nanosleep(&ms, nullptr);  // async-signal-safe
  }
  return open_page();
}

TEST(Handlers, RemoveGivesUpOnAHandlerThatNeverReturns) {
  Shared<StuckState> st;
  ChildResult r = run_child_with_a_page(
      [&] {
        g_stuck = &*st;
        auto id = add_handler(stuck_handler, nullptr);
        if (!id.ok()) _exit(91);
        std::thread faulter([] { *reinterpret_cast<volatile char*>(g_page) = 1; });
        const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (st->inside.load() == 0) {
          if (std::chrono::steady_clock::now() > limit) _exit(92);
          std::this_thread::yield();
        }
        const auto t0 = std::chrono::steady_clock::now();
        auto removed = remove_handler(*id);
        const auto waited = std::chrono::steady_clock::now() - t0;
        st->release = 1;
        faulter.join();
        if (removed.ok()) _exit(1);
        if (removed.error().code() != Errc::timed_out) _exit(2);
        if (removed.error().message().find("10 s") == std::string::npos) _exit(3);
        if (waited < std::chrono::seconds(10)) _exit(4);  // it waited out its bound first
      },
      60);
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// A fault inside a handler: a report of both faults, then death by the default action, not a hang.
char* g_bad = nullptr;
Disposition faulting_handler(FaultContext&, void*) {
  *reinterpret_cast<volatile char*>(g_bad) = 1;  // faults again, inside the handler
  return Disposition::resolved;
}

TEST(Nested, FaultInsideHandlerReportsBothAndDies) {
  FAULTLINE_SKIP_UNDER_EMULATOR(kQemuNestedFault);
#if defined(__SANITIZE_THREAD__)
  // TSan runs handlers from its own signal handler with the signal blocked (it does not honour
  // SA_NODEFER), so the kernel kills a nested fault before faultline sees it.
  GTEST_SKIP() << "TSan blocks the signal during handlers; nested faults cannot re-enter faultline";
#endif
  Page page(PROT_NONE), bad(PROT_NONE);
  ChildResult r = run_child(
      [&] {
        g_bad = bad.get();
        if (!install().ok() || !add_handler(faulting_handler, nullptr).ok()) _exit(90);
        *reinterpret_cast<volatile char*>(page.get()) = 1;
        _exit(1);
      },
      20);
  EXPECT_TRUE(r.signaled() && r.signal() == SIGSEGV) << r;
  EXPECT_NE(r.output.find("nested fault"), std::string::npos) << r;
  char want[64];
  std::snprintf(want, sizeof want, "%p", static_cast<void*>(bad.get()));
  EXPECT_NE(r.output.find(want), std::string::npos) << "the inner fault's address: " << r;
  std::snprintf(want, sizeof want, "%p", static_cast<void*>(page.get()));
  EXPECT_NE(r.output.find(want), std::string::npos) << "the outer fault's address: " << r;
}

// A handler that runs off the end of a small alternate stack (one the thread set after attaching, so
// faultline kept it): the kernel delivers that fault at the stack's top again, over the handler, which
// would overflow again for ever. It must end: a nested-fault report naming the overflow, then SIGSEGV.
[[gnu::noinline]] int burn_stack(int depth) {
  volatile char chunk[1024];
  for (int i = 0; i < 1024; i += 64) chunk[i] = static_cast<char>(depth);  // the whole frame (clang kept 16 bytes of it)
  return depth == 0 ? chunk[0] : burn_stack(depth - 1) + chunk[0];
}
Disposition stack_hungry_handler(FaultContext&, void*) {
  (void)burn_stack(64);  // 64 KiB: far more than the stack below
  return Disposition::declined;
}

TEST(Nested, HandlerThatOverflowsTheAlternateStackEnds) {
  FAULTLINE_SKIP_UNDER_EMULATOR(kQemuNestedFault);
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "the sanitizers run handlers on their own terms (see FaultInsideHandlerReportsBothAndDies)";
#endif
  Page page(PROT_NONE);
  ChildResult r = run_child(
      [&] {
        if (!install().ok() || !add_handler(stack_hungry_handler, nullptr).ok()) _exit(90);
        set_guarded_altstack(16 << 10);  // set after attaching: faultline keeps it
        *reinterpret_cast<volatile char*>(page.get()) = 1;
        _exit(1);
      },
      20);
  // Ends by SIGSEGV, not by the 20 s alarm (the loop). Where the overflowing access came while the stack
  // pointer was still on the alternate stack (clang's code for burn_stack), the kernel cannot deliver
  // the fault at all and kills the process itself; otherwise faultline sees it and names the overflow.
  EXPECT_TRUE(r.signaled() && r.signal() == SIGSEGV) << r;
  if (r.output.find("nested fault") != std::string::npos) {
    EXPECT_NE(r.output.find("overflowed the thread's alternate signal stack (16384 bytes"), std::string::npos) << r;
  }
}

// A handler that leaves by siglongjmp (after leave_handler() when kLeave), and a child body that faults
// on g_bad (a PROT_NONE page) three times through it: _exit(1) unless each fault jumped back.
sigjmp_buf g_jmp;
template <bool kLeave>
Disposition jumping_handler(FaultContext& ctx, void*) {
  if (ctx.address() != reinterpret_cast<std::uintptr_t>(g_bad)) return Disposition::declined;
  if constexpr (kLeave) leave_handler();
  siglongjmp(g_jmp, 1);
}

void fault_three_times_jumping_out(char* bad, FaultHandler handler) {
  g_bad = bad;
  if (!install().ok() || !add_handler(handler, nullptr).ok()) _exit(90);
  volatile int jumps = 0;
  if (sigsetjmp(g_jmp, 1) != 0) jumps = jumps + 1;
  if (jumps < 3) *reinterpret_cast<volatile char*>(g_bad) = 1;
  if (jumps != 3) _exit(1);
}

// Leaving by siglongjmp after leave_handler(), then faulting again: the second fault is a fresh one,
// not "nested".
TEST(Nested, LongjmpOutOfHandlerThenFaultAgain) {
  Page bad(PROT_NONE);
  ChildResult r = run_child([&] {
    fault_three_times_jumping_out(bad.get(), jumping_handler<true>);
    if (in_handler()) _exit(2);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// The same without leave_handler(): faultline repairs its bookkeeping on the next fault.
TEST(Nested, LongjmpWithoutLeaveHandlerIsRepaired) {
  Page bad(PROT_NONE);
  ChildResult r = run_child([&] {
    fault_three_times_jumping_out(bad.get(), jumping_handler<false>);
    // Writers are not blocked by the abandoned dispatches: removing a handler returns.
    auto id = add_handler(decline_all, nullptr);
    if (!id.ok() || !remove_handler(*id).ok()) _exit(2);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// Stack overflow.
// Recurses until the stack runs out (the depth bound is never reached; it keeps the compiler from
// treating the recursion as infinite).
volatile int g_depth_bound = 1 << 30;
__attribute__((noinline)) int recurse(int depth) {
  volatile char frame[512];
  frame[0] = static_cast<char>(depth);
  if (depth >= g_depth_bound) return 0;
  int r = recurse(depth + 1) + frame[0];
  __asm__ volatile("" ::: "memory");
  return r;
}

TEST(StackOverflow, MainThreadIsRecognisedAndReported) {
  ChildResult r = run_child([] {
    if (!install().ok()) _exit(90);
    recurse(0);
  });
  EXPECT_TRUE(r.signaled() && r.signal() == SIGSEGV) << r;
  EXPECT_NE(r.output.find("stack overflow"), std::string::npos) << r;
}

TEST(StackOverflow, SecondThreadIsRecognisedAndReportedWithFullReport) {
  ChildResult r = run_child([] {
    if (!install().ok() || !report::enable().ok()) _exit(90);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 << 10);
    pthread_t t;
    pthread_create(
        &t, &attr,
        [](void*) -> void* {
          auto att = attach_thread();
          if (!att.ok()) _exit(91);
          recurse(0);
          return nullptr;
        },
        nullptr);
    pthread_join(t, nullptr);
  });
  EXPECT_TRUE(r.signaled() && r.signal() == SIGSEGV) << r;
  EXPECT_NE(r.output.find("cause     stack overflow"), std::string::npos) << r;
  EXPECT_NE(r.output.find("recurse"), std::string::npos) << "the backtrace names the recursing function: " << r;
}

struct OverflowSeen {
  std::atomic<int> calls{0};
  std::uintptr_t lo = 0, hi = 0, addr = 0;
};
OverflowSeen* g_overflow = nullptr;
Disposition overflow_hook(FaultContext&, const StackOverflow& info, void*) {
  g_overflow->calls++;
  g_overflow->lo = info.stack_lo;
  g_overflow->hi = info.stack_hi;
  g_overflow->addr = info.fault_address;
  leave_handler();
  siglongjmp(g_jmp, 1);
}

TEST(StackOverflow, HookRunsFirstAndCanRecover) {
  Shared<OverflowSeen> seen;
  ChildResult r = run_child([&] {
    g_overflow = &*seen;
    if (!install().ok() || !set_stack_overflow_handler(overflow_hook, nullptr).ok()) _exit(90);
    if (sigsetjmp(g_jmp, 1) == 0) recurse(0);
    if (counters(SIGSEGV).stack_overflows != 1) _exit(2);
    _exit(7);
  });
  EXPECT_EQ(r.exit_code(), 7) << r;
  EXPECT_EQ(seen->calls.load(), 1);
  EXPECT_GT(seen->hi, seen->lo);
  EXPECT_GE(seen->addr + (1u << 20), seen->lo);
  EXPECT_LT(seen->addr, seen->lo + 4096);
}

// Other traps on request: SIGFPE from an integer division by zero reaches a handler that skips it.
struct FpeSeen {
  int code = 0;
  std::atomic<int> calls{0};
};
FpeSeen* g_fpe = nullptr;
Disposition skip_div(FaultContext& ctx, void*) {
  g_fpe->calls++;
  g_fpe->code = ctx.code();
  ctx.set_pc(ctx.pc() + 3);  // idiv %rcx is 48 f7 f9
  return Disposition::resolved;
}

TEST(OtherTraps, SigfpeOnRequest) {
#if !defined(__x86_64__)
  GTEST_SKIP() << "integer division by zero does not trap on this architecture (aarch64 returns 0)";
#endif
  Shared<FpeSeen> seen;
  ChildResult r = run_child([&] {
    g_fpe = &*seen;
    if (!install({.signals = trap_memory | trap_fpe}).ok() || !add_handler(skip_div, nullptr, trap_fpe).ok()) _exit(90);
#if defined(__x86_64__)
    long q;
    __asm__ volatile(
        "mov $7, %%rax\n"
        "xor %%edx, %%edx\n"
        "xor %%ecx, %%ecx\n"
        ".byte 0x48, 0xf7, 0xf9\n"  // idiv %rcx
        "mov %%rax, %0\n"
        : "=r"(q)
        :
        : "rax", "rdx", "rcx");
    if (q != 7) _exit(1);
#endif
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
  EXPECT_EQ(seen->calls.load(), 1);
  EXPECT_EQ(seen->code, FPE_INTDIV);
}

// SIGILL and SIGTRAP on request. faultline_test_ud2 executes an undefined instruction (x86-64 ud2,
// aarch64 udf: SIGILL at the instruction; the handler resolves it by moving the PC past it) and
// faultline_test_int3 a breakpoint (x86-64 int3: SIGTRAP reported after the instruction, resuming there
// goes on; aarch64 brk: reported at the instruction, the handler steps over it).
extern "C" void faultline_test_ud2();
extern "C" void faultline_test_int3();
#if defined(__x86_64__)
asm(R"(
  .text
  .globl faultline_test_ud2, faultline_test_int3
  .type faultline_test_ud2, @function
  .p2align 4
faultline_test_ud2:
  ud2
  ret
  .size faultline_test_ud2, .-faultline_test_ud2
  .type faultline_test_int3, @function
  .p2align 4
faultline_test_int3:
  int3
  ret
  .size faultline_test_int3, .-faultline_test_int3
)");
constexpr unsigned kIllLength = 2;            // ud2: 0f 0b
constexpr int kIllCode = ILL_ILLOPN;
constexpr int kTrapCode = SI_KERNEL;
constexpr std::uintptr_t kTrapPcAfter = 1;    // the PC is already past int3
constexpr unsigned kTrapStep = 0;
#elif defined(__aarch64__)
asm(R"(
  .text
  .globl faultline_test_ud2, faultline_test_int3
  .type faultline_test_ud2, %function
  .p2align 4
faultline_test_ud2:
  udf #0
  ret
  .size faultline_test_ud2, .-faultline_test_ud2
  .type faultline_test_int3, %function
  .p2align 4
faultline_test_int3:
  brk #0
  ret
  .size faultline_test_int3, .-faultline_test_int3
)");
constexpr unsigned kIllLength = 4;
constexpr int kIllCode = ILL_ILLOPC;
constexpr int kTrapCode = TRAP_BRKPT;
constexpr std::uintptr_t kTrapPcAfter = 0;    // reported at brk
constexpr unsigned kTrapStep = 4;             // so the handler steps over it
#endif

struct TrapSeen {
  std::atomic<int> ill{0}, trap{0};
  int ill_code = 0, trap_code = 0;
  std::uintptr_t ill_pc = 0, trap_pc = 0;
};
TrapSeen* g_traps = nullptr;

Disposition on_ill_or_trap(FaultContext& ctx, void*) {
  if (ctx.signal() == SIGILL) {
    g_traps->ill++;
    g_traps->ill_code = ctx.code();
    g_traps->ill_pc = ctx.pc();
    if (ctx.pc() != reinterpret_cast<std::uintptr_t>(&faultline_test_ud2)) return Disposition::declined;
    ctx.set_pc(ctx.pc() + kIllLength);  // past the undefined instruction
    return Disposition::resolved;
  }
  if (ctx.signal() == SIGTRAP) {
    g_traps->trap++;
    g_traps->trap_code = ctx.code();
    g_traps->trap_pc = ctx.pc();
    ctx.set_pc(ctx.pc() + kTrapStep);
    return Disposition::resolved;
  }
  return Disposition::declined;
}

TEST(OtherTraps, SigillAndSigtrapOnRequest) {
  Shared<TrapSeen> seen;
  ChildResult r = run_child([&] {
    g_traps = &*seen;
    if (!install({.signals = trap_memory | trap_ill | trap_trap}).ok() || !add_handler(on_ill_or_trap, nullptr, trap_ill | trap_trap).ok()) _exit(90);
    faultline_test_ud2();
    faultline_test_int3();
    faultline_test_ud2();
    if (counters(SIGILL).resolved != 2 || counters(SIGTRAP).resolved != 1) _exit(1);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
  EXPECT_EQ(seen->ill.load(), 2);
  EXPECT_TRUE(seen->ill_code == kIllCode || (under_emulator() && seen->ill_code == ILL_ILLOPN))
      << seen->ill_code << " (qemu-user says ILL_ILLOPN where Linux says ILL_ILLOPC)";
  EXPECT_EQ(seen->ill_pc, reinterpret_cast<std::uintptr_t>(&faultline_test_ud2));
  EXPECT_EQ(seen->trap.load(), 1);
  EXPECT_EQ(seen->trap_code, kTrapCode);
  EXPECT_EQ(seen->trap_pc, reinterpret_cast<std::uintptr_t>(&faultline_test_int3) + kTrapPcAfter);
}

// Without the request, SIGILL is not faultline's: the handler is never asked and ud2 kills.
TEST(OtherTraps, SigillIsNotTakenUnlessRequested) {
  Shared<TrapSeen> seen;
  ChildResult r = run_child([&] {
    g_traps = &*seen;
    if (!install().ok() || !add_handler(on_ill_or_trap, nullptr, trap_ill | trap_trap).ok()) _exit(90);
    faultline_test_ud2();
    _exit(1);
  });
  EXPECT_TRUE(r.signaled() && r.signal() == SIGILL) << r;
  EXPECT_EQ(seen->ill.load(), 0);
}

}  // namespace
}  // namespace faultline
