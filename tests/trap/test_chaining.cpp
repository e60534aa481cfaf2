// tests/test_chaining.cpp: faults nobody resolves reach the previous action with its own semantics.
//
// The matrix: previous action in {SIG_DFL, SIG_IGN, sa_handler, sa_sigaction} x fault in {ours and
// resolved, ours and declined, not ours, sent with tgkill}. Each case runs in a child; the child's end and
// what the previous handler saw (in shared memory) are asserted.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/syscall.h>

#include <atomic>
#include <cstring>

#include "support/child.hpp"
#include "faultline/trap.hpp"

namespace faultline {
namespace {

using namespace test;  // tests/support/

enum class Prev { dfl, ign, handler, sigaction };
enum class Fault { ours_resolved, ours_declined, not_ours, tgkill };

struct Seen {
  std::atomic<int> prev_calls{0};
  std::atomic<int> our_calls{0};
  int sig = 0;
  int code = 0;
  void* addr = nullptr;
  std::uint64_t blocked_mask = 0;
};

Seen* g_seen = nullptr;
char* g_ours = nullptr;
std::size_t g_ours_size = 0;
bool g_resolve = true;

void prev_plain(int sig) {
  g_seen->prev_calls++;
  g_seen->sig = sig;
  _exit(42);
}
void prev_info(int sig, siginfo_t* si, void*) {
  g_seen->prev_calls++;
  g_seen->sig = sig;
  g_seen->code = si->si_code;
  g_seen->addr = si->si_addr;
  _exit(43);
}

Disposition our_handler(FaultContext& ctx, void*) {
  g_seen->our_calls++;
  auto a = ctx.address();
  auto base = reinterpret_cast<std::uintptr_t>(g_ours);
  if (a < base || a >= base + g_ours_size || !g_resolve) return Disposition::declined;
  mprotect(g_ours, g_ours_size, PROT_READ | PROT_WRITE);
  return Disposition::resolved;
}

void set_prev(int sig, Prev p) {
  struct sigaction sa {};
  sigemptyset(&sa.sa_mask);
  switch (p) {
    case Prev::dfl: sa.sa_handler = SIG_DFL; break;
    case Prev::ign: sa.sa_handler = SIG_IGN; break;
    case Prev::handler: sa.sa_handler = prev_plain; break;
    case Prev::sigaction:
      sa.sa_sigaction = prev_info;
      sa.sa_flags = SA_SIGINFO;
      break;
  }
  ASSERT_EQ(sigaction(sig, &sa, nullptr), 0);
}

class Chaining : public ::testing::TestWithParam<std::tuple<Prev, Fault>> {};

TEST_P(Chaining, PreviousActionKeepsItsSemantics) {
  auto [prev, fault] = GetParam();
  Shared<Seen> seen;
  Page ours(PROT_NONE), other(PROT_NONE);
  ChildResult r = run_child([&] {
    g_seen = &*seen;
    g_ours = ours.get();
    g_ours_size = ours.size();
    g_resolve = fault == Fault::ours_resolved;
    set_prev(SIGSEGV, prev);
    if (!install().ok() || !add_handler(our_handler, nullptr).ok()) _exit(90);
    switch (fault) {
      case Fault::ours_resolved:
      case Fault::ours_declined: *reinterpret_cast<volatile char*>(ours.get() + 8) = 1; break;
      case Fault::not_ours: *reinterpret_cast<volatile char*>(other.get() + 8) = 1; break;
      case Fault::tgkill: syscall(SYS_tgkill, getpid(), gettid(), SIGSEGV); break;
    }
  });

  const bool kernel_fault = fault != Fault::tgkill;
  void* fault_addr = fault == Fault::not_ours ? other.get() + 8 : ours.get() + 8;
  if (fault == Fault::ours_resolved) {
    EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
    EXPECT_EQ(seen->prev_calls.load(), 0);
    EXPECT_EQ(seen->our_calls.load(), 1);
    return;
  }
  if (fault == Fault::tgkill) {
    EXPECT_EQ(seen->our_calls.load(), 0) << "a signal sent by a process must never reach the handlers";
  } else {
    EXPECT_EQ(seen->our_calls.load(), 1);
  }
  switch (prev) {
    case Prev::dfl:
      EXPECT_TRUE(r.signaled() && r.signal() == SIGSEGV) << r;
      break;
    case Prev::ign:
      if (kernel_fault) EXPECT_TRUE(r.signaled() && r.signal() == SIGSEGV) << r;
      else EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
      break;
    case Prev::handler:
      EXPECT_EQ(r.exit_code(), 42) << r;
      EXPECT_EQ(seen->sig, SIGSEGV);
      EXPECT_EQ(seen->prev_calls.load(), 1);
      break;
    case Prev::sigaction:
      EXPECT_EQ(r.exit_code(), 43) << r;
      EXPECT_EQ(seen->sig, SIGSEGV);
      if (kernel_fault) {
        EXPECT_EQ(seen->addr, fault_addr) << "si_addr must reach the previous handler unchanged";
        EXPECT_EQ(seen->code, SEGV_ACCERR);
      } else {
        EXPECT_EQ(seen->code, SI_TKILL);
      }
      break;
  }
}

std::string case_name(const ::testing::TestParamInfo<std::tuple<Prev, Fault>>& info) {
  static const char* kPrev[] = {"SigDfl", "SigIgn", "SaHandler", "SaSigaction"};
  static const char* kFault[] = {"OursResolved", "OursDeclined", "NotOurs", "Tgkill"};
  return std::string(kPrev[static_cast<int>(std::get<0>(info.param))]) + "_" +
         kFault[static_cast<int>(std::get<1>(info.param))];
}

INSTANTIATE_TEST_SUITE_P(Matrix, Chaining,
                         ::testing::Combine(::testing::Values(Prev::dfl, Prev::ign, Prev::handler, Prev::sigaction),
                                            ::testing::Values(Fault::ours_resolved, Fault::ours_declined,
                                                              Fault::not_ours, Fault::tgkill)),
                         case_name);

// SA_RESETHAND: the previous handler runs once; the re-executed fault then meets SIG_DFL.
void prev_resethand(int, siginfo_t*, void*) { g_seen->prev_calls++; }

TEST(ChainingDetails, ResetHandRunsPreviousOnceThenDefault) {
  Shared<Seen> seen;
  Page other(PROT_NONE);
  ChildResult r = run_child([&] {
    g_seen = &*seen;
    struct sigaction sa {};
    sa.sa_sigaction = prev_resethand;
    sa.sa_flags = SA_SIGINFO | SA_RESETHAND;
    sigaction(SIGSEGV, &sa, nullptr);
    if (!install().ok()) _exit(90);
    *reinterpret_cast<volatile char*>(other.get()) = 1;
  });
  EXPECT_TRUE(r.signaled() && r.signal() == SIGSEGV) << r;
  EXPECT_EQ(seen->prev_calls.load(), 1);
}

// The previous handler runs with its own sa_mask blocked, plus the signal itself (no SA_NODEFER).
void prev_mask(int, siginfo_t*, void*) {
  sigset_t cur;
  sigprocmask(SIG_BLOCK, nullptr, &cur);
  std::uint64_t bits = 0;
  for (int s = 1; s < 64; ++s) {
    if (sigismember(&cur, s) == 1) bits |= 1ull << (s - 1);
  }
  g_seen->blocked_mask = bits;
  _exit(44);
}

TEST(ChainingDetails, PreviousHandlerGetsItsMask) {
  Shared<Seen> seen;
  Page other(PROT_NONE);
  ChildResult r = run_child([&] {
    g_seen = &*seen;
    struct sigaction sa {};
    sa.sa_sigaction = prev_mask;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR1);
    sigaction(SIGSEGV, &sa, nullptr);
    if (!install().ok()) _exit(90);
    *reinterpret_cast<volatile char*>(other.get()) = 1;
  });
  ASSERT_EQ(r.exit_code(), 44) << r;
  EXPECT_TRUE(seen->blocked_mask & (1ull << (SIGUSR1 - 1)));
  EXPECT_TRUE(seen->blocked_mask & (1ull << (SIGSEGV - 1)));
}

// SIGBUS from a file mapping past its end reaches SIG_DFL as SIGBUS.
TEST(ChainingDetails, SigbusBeyondEndOfFileDiesBySigbus) {
  ChildResult r = run_child([&] {
    char path[] = "/tmp/faultline-sigbus-XXXXXX";
    int fd = mkstemp(path);
    unlink(path);
    if (fd < 0 || ftruncate(fd, 0) != 0) _exit(91);
    void* p = mmap(nullptr, 4096, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) _exit(92);
    if (!install().ok()) _exit(90);
    (void)*static_cast<volatile char*>(p);
  });
  EXPECT_TRUE(r.signaled() && r.signal() == SIGBUS) << r;
  EXPECT_EQ(counters(SIGBUS).seen, 0u) << "the parent's counters are its own";
}

}  // namespace
}  // namespace faultline
