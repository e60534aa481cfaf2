// tests/test_report.cpp: the crash report (contents, colour on a terminal and NO_COLOR, the frame-pointer
// fallback of the backtrace), and the /proc/self/maps reader behind it.
#include <gtest/gtest.h>
#include <pthread.h>

#include <thread>
#include <poll.h>
#include <pty.h>
#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "support/child.hpp"
#include "support/signals.hpp"
#include "faultline/report.hpp"
#include "faultline/trap.hpp"
#include "os/linux/maps.hpp"

namespace faultline {
namespace {

using namespace test;  // tests/support/

__attribute__((noinline)) void crash_here_for_report(char* p) {
  *reinterpret_cast<volatile char*>(p + 0x18) = 1;
  __asm__ volatile("" ::: "memory");
}

void write_to(char* p) { *reinterpret_cast<volatile char*>(p) = 1; }

// A child body: faultline and its report (in `color`) are installed, then `crash(page)` faults.
void crash_with_report(report::Color color, void (*crash)(char*), char* page) {
  report::Options o;
  o.color = color;
  if (!install().ok() || !report::enable(o).ok()) _exit(90);
  crash(page);
  _exit(1);
}

std::string hex(const void* p) {
  char b[32];
  std::snprintf(b, sizeof b, "%p", p);
  return b;
}

#if defined(__x86_64__)
constexpr Reg kPcReg = Reg::rip;
#elif defined(__aarch64__)
constexpr Reg kPcReg = Reg::pc;
#endif

TEST(Report, FatalFaultReportNamesEverythingAndStillDiesBySignal) {
  Page page(PROT_NONE);
  ChildResult r = run_child([&] { crash_with_report(report::Color::never, crash_here_for_report, page.get()); });
  EXPECT_TRUE(r.signaled() && r.signal() == SIGSEGV) << r;
  const std::string& out = r.output;
  EXPECT_NE(out.find("SIGSEGV (SEGV_ACCERR)"), std::string::npos) << out;
  EXPECT_NE(out.find("address   " + hex(page.get() + 0x18)), std::string::npos) << out;
  EXPECT_NE(out.find("access write"), std::string::npos) << out;
  EXPECT_NE(out.find("mapping   "), std::string::npos) << out;
  EXPECT_NE(out.find("---p"), std::string::npos) << "the PROT_NONE mapping's line: " << out;
  EXPECT_NE(out.find(reg_name(kPcReg)), std::string::npos) << out;
  EXPECT_NE(out.find("backtrace"), std::string::npos) << out;
  EXPECT_NE(out.find("crash_here_for_report"), std::string::npos) << out;
  EXPECT_EQ(out.find("\033["), std::string::npos) << "no colour when told so";
}

// The headline names the thread (its name beside its id).
TEST(Report, HeadlineNamesTheThread) {
  Page page(PROT_NONE);
  ChildResult r = run_child([&] {
    std::thread([&] {
      pthread_setname_np(pthread_self(), "worker-7");
      crash_with_report(report::Color::never, write_to, page.get());
    }).join();
  });
  EXPECT_TRUE(r.signaled() && r.signal() == SIGSEGV) << r;
  EXPECT_NE(r.output.find(" \"worker-7\" of process"), std::string::npos) << r;
}

// A thread that never attached and set a small alternate stack of its own (Rust's standard library gives
// each thread 8 KiB): the handler runs there, and the report, which needs more, moves to faultline's
// spare stack: the whole report, then death by the signal (not a nested fault, not a loop).
TEST(Report, ASmallAlternateStackStillGetsTheWholeReport) {
  Page page(PROT_NONE);
  ChildResult r = run_child(
      [&] {
        report::Options o;
        o.color = report::Color::never;
        InstallOptions io;
        io.altstack_for_caller = false;
        if (!install(io).ok() || !report::enable(o).ok()) _exit(90);
        std::thread([&] {
          set_guarded_altstack(8 << 10);  // as Rust's std maps one
          crash_here_for_report(page.get());
        }).join();
        _exit(1);
      },
      20);
  EXPECT_TRUE(r.signaled() && r.signal() == SIGSEGV) << r;
  EXPECT_EQ(r.output.find("nested fault"), std::string::npos) << r;
  EXPECT_NE(r.output.find("crash_here_for_report"), std::string::npos) << "the backtrace: " << r;
  EXPECT_NE(r.output.find("passing SIGSEGV on to the previous action"), std::string::npos) << r;
}

// A deep recursion's backtrace shows its first frames and its last, main among them, and how many it
// left out in between.
[[gnu::noinline]] int dive(int depth, char* page) {
  volatile char frame[64];
  frame[0] = static_cast<char>(depth);
  if (depth == 0) {
    write_to(page);
    return frame[0];
  }
  return dive(depth - 1, page) + frame[0];
}

TEST(Report, LongBacktraceKeepsItsEndAndSaysWhatItLeftOut) {
  Page page(PROT_NONE);
  ChildResult r = run_child([&] {
    report::Options o;
    o.color = report::Color::never;
    o.max_frames = 64;
    if (!install().ok() || !report::enable(o).ok()) _exit(90);
    std::printf("%d\n", dive(10000, page.get()));
    _exit(1);
  });
  EXPECT_TRUE(r.signaled() && r.signal() == SIGSEGV) << r.describe().substr(0, 2000);
  EXPECT_NE(r.output.find(" frames not shown ..."), std::string::npos) << r.describe().substr(0, 4000);
  EXPECT_NE(r.output.find(" in main+"), std::string::npos) << r.describe().substr(0, 6000);
}

// A stack overflow (thousands of frames deep): the report says so, and its backtrace still reaches main.
volatile bool g_deeper = true;
[[gnu::noinline]] int bottomless(int depth) {
  volatile char frame[512];
  frame[0] = static_cast<char>(depth);
  return g_deeper ? bottomless(depth + 1) + frame[0] : 0;
}

TEST(Report, StackOverflowBacktraceReachesMain) {
  ChildResult r = run_child([] {
    report::Options o;
    o.color = report::Color::never;
    if (!install().ok() || !report::enable(o).ok()) _exit(90);
    std::printf("%d\n", bottomless(0));
    _exit(1);
  });
  EXPECT_TRUE(r.signaled() && r.signal() == SIGSEGV) << r.describe().substr(0, 2000);
  EXPECT_NE(r.output.find("stack overflow"), std::string::npos) << r.describe().substr(0, 2000);
  EXPECT_NE(r.output.find(" frames not shown ..."), std::string::npos) << r.describe().substr(0, 4000);
  EXPECT_NE(r.output.find(" in main+"), std::string::npos) << r.describe().substr(0, 6000);
}

TEST(Report, EnvironmentVariableEnablesItAtInstall) {
  ChildResult r = run_child([] {
    setenv("FAULTLINE_REPORT", "1", 1);
    if (!install().ok() || !report::enabled()) _exit(90);
    volatile std::uintptr_t unmapped = 16;  // the first page is never mapped
    *reinterpret_cast<volatile int*>(unmapped) = 1;
  });
  EXPECT_TRUE(r.signaled() && r.signal() == SIGSEGV) << r;
  EXPECT_NE(r.output.find("SEGV_MAPERR"), std::string::npos) << r;
  EXPECT_NE(r.output.find("none (no mapping holds this address)"), std::string::npos) << r;
}

TEST(Report, BadEnvironmentValueIsAClearError) {
  ChildResult r = run_child([] {
    setenv("FAULTLINE_REPORT", "purple", 1);
    auto res = install();
    if (res.ok()) _exit(1);
    if (res.error().message().find("purple") == std::string::npos) _exit(2);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

TEST(Report, ColourOnlyWhenAsked) {
  Page page(PROT_NONE);
  ChildResult r = run_child([&] { crash_with_report(report::Color::always, write_to, page.get()); });
  EXPECT_NE(r.output.find("\033[1;31m"), std::string::npos) << r;
}

// Runs `body` in a forked child whose stdout and stderr are the slave side of a pseudo-terminal (so
// isatty(2) is true, as for a program run from a shell), collecting what it writes and how it ends.
ChildResult run_child_on_terminal(const std::function<void()>& body, unsigned timeout_s = 60) {
  int master = -1, slave = -1;
  if (openpty(&master, &slave, nullptr, nullptr, nullptr) != 0) std::abort();
  const pid_t pid = fork_child(slave, master, body, timeout_s);
  close(slave);
  ChildResult r;
  char buf[4096];
  for (;;) {  // until every copy of the slave is closed (EIO on Linux) or the child's alarm has long passed
    pollfd p{master, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(timeout_s + 10) * 1000) <= 0) break;
    ssize_t n = read(master, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    r.output.append(buf, static_cast<std::size_t>(n));
  }
  close(master);
  while (waitpid(pid, &r.status, 0) < 0 && errno == EINTR) {
  }
  return r;
}

// On a terminal, Color::automatic colours the report unless NO_COLOR is set to a non-empty value.
ChildResult crash_on_terminal(const char* no_color, char* page) {
  return run_child_on_terminal([&] {
    if (no_color != nullptr) setenv("NO_COLOR", no_color, 1);
    else unsetenv("NO_COLOR");
    crash_with_report(report::Color::automatic, write_to, page);
  });
}

TEST(Report, NoColorIsHonouredOnAutomatic) {
  Page page(PROT_NONE);
  ChildResult coloured = crash_on_terminal(nullptr, page.get());
  EXPECT_TRUE(coloured.signaled() && coloured.signal() == SIGSEGV) << coloured;
  EXPECT_NE(coloured.output.find("*** faultline: fatal signal"), std::string::npos) << coloured;
  EXPECT_NE(coloured.output.find("\033[1;31m"), std::string::npos) << "a terminal gets colour: " << coloured;

  ChildResult plain = crash_on_terminal("1", page.get());
  EXPECT_TRUE(plain.signaled() && plain.signal() == SIGSEGV) << plain;
  EXPECT_NE(plain.output.find("*** faultline: fatal signal"), std::string::npos) << plain;
  EXPECT_EQ(plain.output.find("\033["), std::string::npos) << "NO_COLOR=1 on a terminal: " << plain;

  ChildResult empty = crash_on_terminal("", page.get());  // no-color.org: an empty value does not count
  EXPECT_TRUE(empty.signaled() && empty.signal() == SIGSEGV) << empty;
  EXPECT_NE(empty.output.find("\033[1;31m"), std::string::npos) << "NO_COLOR empty: " << empty;
}

// The frame-pointer fallback. faultline_test_no_unwind_info (below, no CFI: no unwind table covers it)
// keeps a standard frame (rbp -> saved rbp, return address) but puts 32 KiB of locals between rbp and
// the stack pointer, more than libunwind's frame-chain guess accepts (16 KiB), so libunwind stops after
// the faulting frame. The report then walks the frame pointers and must name the caller.
extern "C" void faultline_test_no_unwind_info(char* p);
#if defined(__x86_64__)
asm(R"(
  .text
  .globl faultline_test_no_unwind_info
  .type faultline_test_no_unwind_info, @function
  .p2align 4
faultline_test_no_unwind_info:
  push %rbp
  mov %rsp, %rbp
  sub $0x8000, %rsp
  movb $1, (%rdi)
  mov %rbp, %rsp
  pop %rbp
  ret
  .size faultline_test_no_unwind_info, .-faultline_test_no_unwind_info
)");
#elif defined(__aarch64__)
asm(R"(
  .text
  .globl faultline_test_no_unwind_info
  .type faultline_test_no_unwind_info, %function
  .p2align 4
faultline_test_no_unwind_info:
  stp x29, x30, [sp, #-16]!
  mov x29, sp
  sub sp, sp, #0x8000
  mov w1, #1
  strb w1, [x0]
  mov sp, x29
  ldp x29, x30, [sp], #16
  ret
  .size faultline_test_no_unwind_info, .-faultline_test_no_unwind_info
)");
#endif

__attribute__((noinline)) void caller_of_code_without_unwind_info(char* p) {
  faultline_test_no_unwind_info(p);
  __asm__ volatile("" ::: "memory");  // not a tail call: the return address stays in this function
}

TEST(Report, FramePointerWalkWhenLibunwindFindsNoCaller) {
  Page page(PROT_NONE);
  ChildResult r = run_child([&] {
    crash_with_report(report::Color::never, caller_of_code_without_unwind_info, page.get());
  });
  EXPECT_TRUE(r.signaled() && r.signal() == SIGSEGV) << r;
#if defined(__aarch64__)
  // libunwind's aarch64 unwinder finds the caller through the link register even without unwind
  // information: the fallback is not reached, but the caller must be named all the same.
  EXPECT_NE(r.output.find("caller_of_code_without_unwind_info"), std::string::npos) << r;
  GTEST_SKIP() << "aarch64: libunwind finds the caller through the link register; the frame-pointer walk is not needed";
#endif
  const std::size_t walk = r.output.find("frame-pointer walk");
  ASSERT_NE(walk, std::string::npos) << "libunwind was expected to stop at the faulting frame: " << r;
  EXPECT_NE(r.output.find("faultline_test_no_unwind_info", walk), std::string::npos) << r;
  EXPECT_NE(r.output.find("caller_of_code_without_unwind_info", walk), std::string::npos)
      << "the walk names the caller through the saved frame pointer: " << r;
}

TEST(Report, EnableRejectsBadOptions) {
  report::Options o;
  o.fd = -1;
  EXPECT_EQ(report::enable(o).error().code(), Errc::invalid_argument);
  o.fd = 987;  // not open
  EXPECT_EQ(report::enable(o).error().code(), Errc::invalid_argument);
  o.fd = 2;
  o.max_frames = 0;
  EXPECT_EQ(report::enable(o).error().code(), Errc::invalid_argument);
  EXPECT_EQ(report::enable_from_env(nullptr).error().code(), Errc::invalid_argument);
  EXPECT_FALSE(report::enabled());
}

TEST(Report, NoReportWhenAPreviousHandlerTakesTheFault) {
  Page page(PROT_NONE);
  ChildResult r = run_child([&] {
    install_plain_handler(SIGSEGV, [](int) { _exit(12); });
    if (!install().ok() || !report::enable().ok()) _exit(90);
    write_to(page.get());
  });
  EXPECT_EQ(r.exit_code(), 12) << r;
  EXPECT_EQ(r.output.find("faultline"), std::string::npos) << r;
}

TEST(Maps, FindsTheMappingOfAnAddress) {
  Page page(PROT_READ);
  os::MapsEntry e;
  ASSERT_TRUE(os::find_mapping(reinterpret_cast<std::uintptr_t>(page.get()) + 10, &e));
  EXPECT_LE(e.start, reinterpret_cast<std::uintptr_t>(page.get()));
  EXPECT_GE(e.end, reinterpret_cast<std::uintptr_t>(page.get()) + page.size());
  EXPECT_EQ(e.perms[0], 'r');
  EXPECT_EQ(e.perms[1], '-');
  int local = 0;
  ASSERT_TRUE(os::find_mapping(reinterpret_cast<std::uintptr_t>(&local), &e));
  EXPECT_FALSE(os::find_mapping(8, &e));
  auto code = reinterpret_cast<std::uintptr_t>(&crash_here_for_report);
  ASSERT_TRUE(os::find_mapping(code, &e));
  EXPECT_EQ(e.perms[2], 'x');
  EXPECT_NE(std::strstr(e.path, "faultline_tests"), nullptr) << e.path;
}

}  // namespace
}  // namespace faultline
