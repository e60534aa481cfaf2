// tests/test_chaining.cpp: faults nobody resolves reach the previous action with its own semantics.
//
// The matrix: previous action in {SIG_DFL, SIG_IGN, sa_handler, sa_sigaction} x fault in {ours and
// resolved, ours and declined, not ours, sent with tgkill}. Each case runs in a child traced with ptrace;
// the child's end, what the previous handler saw (in shared memory) and every SIGSEGV the kernel delivered
// to the child (its siginfo, read at the signal-delivery stop) are asserted: a SIG_DFL death must come
// from the faulting instruction re-executed (SEGV_ACCERR at the fault address) for a kernel fault, and
// from the signal raised again (SI_TKILL) for a signal a process sent.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>

#include <atomic>
#include <cstring>
#include <vector>

#include "support/child.hpp"
#include "support/signals.hpp"
#include "faultline/report.hpp"
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

// A child run under ptrace: how it ended, what it wrote, and the siginfo of every SIGSEGV delivered to
// it, in order.
struct TracedResult : ChildResult {
  std::vector<siginfo_t> segv;
};

TracedResult run_traced_child(const std::function<void()>& body, unsigned timeout_s = 30) {
  // Output goes to a memfd rather than a pipe: the tracer reads it once the child is gone, and a child
  // that writes much never blocks on a full pipe while the tracer waits for it.
  const int out = memfd_create("traced-child-output", MFD_CLOEXEC);
  if (out < 0) std::abort();
  // A hang ends as SIGALRM, which the tracer passes on.
  const pid_t pid = fork_child(out, -1, [&] {
    if (ptrace(PTRACE_TRACEME, 0, nullptr, nullptr) != 0) _exit(95);
    body();
  }, timeout_s);
  TracedResult r;
  for (unsigned stops = 0;;) {
    int st = 0;
    if (waitpid(pid, &st, 0) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (WIFEXITED(st) || WIFSIGNALED(st)) {
      r.status = st;
      break;
    }
    if (!WIFSTOPPED(st)) continue;
    if (++stops > 100) {  // a fault that repeats forever: end it
      kill(pid, SIGKILL);
      ptrace(PTRACE_CONT, pid, nullptr, nullptr);
      continue;
    }
    const int sig = WSTOPSIG(st);
    siginfo_t si{};
    if (sig == SIGSEGV && ptrace(PTRACE_GETSIGINFO, pid, nullptr, &si) == 0) r.segv.push_back(si);
    // Deliver the signal as it would have been without the tracer.
    ptrace(PTRACE_CONT, pid, nullptr, reinterpret_cast<void*>(static_cast<long>(sig)));
  }
  if (kill(pid, 0) == 0) {  // still there (waitpid failed): never leave it behind
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  char buf[4096];
  ssize_t n;
  for (off_t at = 0; (n = pread(out, buf, sizeof buf, at)) > 0; at += n) r.output.append(buf, static_cast<std::size_t>(n));
  close(out);
  return r;
}

std::string describe_segv(const std::vector<siginfo_t>& v) {
  std::string s = std::to_string(v.size()) + " SIGSEGV delivered:";
  for (const siginfo_t& si : v) {
    char b[96];
    std::snprintf(b, sizeof b, " [code %d addr %p pid %d]", si.si_code, si.si_addr, si.si_pid);
    s += b;
  }
  return s;
}

class Chaining : public ::testing::TestWithParam<std::tuple<Prev, Fault>> {};

TEST_P(Chaining, PreviousActionKeepsItsSemantics) {
  FAULTLINE_SKIP_UNDER_EMULATOR("ptrace, which counts the deliveries here, traces qemu, not the program");
  const Prev prev = std::get<0>(GetParam());  // (clang 14: no structured bindings in lambdas)
  const Fault fault = std::get<1>(GetParam());
  Shared<Seen> seen;
  Page ours(PROT_NONE), other(PROT_NONE);
  TracedResult r = run_traced_child([&] {
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
  const std::string segv = describe_segv(r.segv);
  switch (prev) {
    case Prev::dfl:
    case Prev::ign:
      if (prev == Prev::ign && !kernel_fault) {  // ignored: delivered once, and the child goes on
        EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
        EXPECT_EQ(r.segv.size(), 1u) << segv;
        break;
      }
      EXPECT_TRUE(r.signaled() && r.signal() == SIGSEGV) << r;
      // Delivered twice: once to faultline, once more under the default action, which kills.
      ASSERT_EQ(r.segv.size(), 2u) << segv;
      if (kernel_fault) {
        // The faulting instruction ran again with SIG_DFL in place: the kernel's own fault, not a copy.
        EXPECT_EQ(r.segv[1].si_code, SEGV_ACCERR) << "re-executed, not raised: " << segv;
        EXPECT_EQ(r.segv[1].si_addr, fault_addr) << segv;
      } else {
        // Sent by a process: raised again by the child itself.
        EXPECT_EQ(r.segv[1].si_code, SI_TKILL) << "raised again: " << segv;
        EXPECT_EQ(r.segv[1].si_pid, r.segv[0].si_pid) << segv;
      }
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

// In a child: `prev` (with the further `flags`, and `blocked` in its mask) is the previous SIGSEGV action
// when faultline is installed; then an access to a PROT_NONE page that no handler resolves.
ChildResult unresolved_fault_after(Seen* seen, void (*prev)(int, siginfo_t*, void*), int flags,
                                   std::initializer_list<int> blocked = {}) {
  Page other(PROT_NONE);
  return run_child([&] {
    g_seen = seen;
    install_handler(SIGSEGV, prev, flags, blocked);
    if (!install().ok()) _exit(90);
    *reinterpret_cast<volatile char*>(other.get()) = 1;
  });
}

// SA_RESETHAND: the previous handler runs once; the re-executed fault then meets SIG_DFL.
void prev_resethand(int, siginfo_t*, void*) { g_seen->prev_calls++; }

TEST(ChainingDetails, ResetHandRunsPreviousOnceThenDefault) {
  Shared<Seen> seen;
  ChildResult r = unresolved_fault_after(&*seen, prev_resethand, SA_RESETHAND);
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
  ChildResult r = unresolved_fault_after(&*seen, prev_mask, 0, {SIGUSR1});
  ASSERT_EQ(r.exit_code(), 44) << r;
  EXPECT_TRUE(seen->blocked_mask & (1ull << (SIGUSR1 - 1)));
  EXPECT_TRUE(seen->blocked_mask & (1ull << (SIGSEGV - 1)));
}

// SIGBUS from a file mapping past its end reaches SIG_DFL as SIGBUS, through faultline. The child dies
// by SIGBUS with or without faultline, so the evidence is the child's report, which only faultline's
// handler writes: it names the SIGBUS, its address (the mapping's, passed back in shared memory) and
// the hand-over to the previous action.
struct BusSeen {
  void* addr = nullptr;
};

TEST(ChainingDetails, SigbusBeyondEndOfFileDiesBySigbus) {
  Shared<BusSeen> seen;
  ChildResult r = run_child([&] {
    char path[] = "/tmp/faultline-sigbus-XXXXXX";
    int fd = mkstemp(path);
    unlink(path);
    if (fd < 0 || ftruncate(fd, 0) != 0) _exit(91);
    void* p = mmap(nullptr, 4096, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) _exit(92);
    seen->addr = p;
    report::Options o;
    o.color = report::Color::never;
    o.backtrace = false;
    if (!install().ok() || !report::enable(o).ok()) _exit(90);
    (void)*static_cast<volatile char*>(p);
  });
  EXPECT_TRUE(r.signaled() && r.signal() == SIGBUS) << r;
  EXPECT_NE(r.output.find("*** faultline: fatal signal: SIGBUS (BUS_ADRERR)"), std::string::npos)
      << "faultline's handler saw the SIGBUS: " << r;
  char want[64];
  std::snprintf(want, sizeof want, "address   %p", seen->addr);
  EXPECT_NE(r.output.find(want), std::string::npos) << r;
  EXPECT_NE(r.output.find("passing SIGBUS on to the previous action"), std::string::npos) << r;
}

}  // namespace
}  // namespace faultline
