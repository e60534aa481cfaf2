// tests/test_report.cpp: the crash report, and the /proc/self/maps reader behind it.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "support/child.hpp"
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

std::string hex(const void* p) {
  char b[32];
  std::snprintf(b, sizeof b, "%p", p);
  return b;
}

TEST(Report, FatalFaultReportNamesEverythingAndStillDiesBySignal) {
  Page page(PROT_NONE);
  ChildResult r = run_child([&] {
    report::Options o;
    o.color = report::Color::never;
    if (!install().ok() || !report::enable(o).ok()) _exit(90);
    crash_here_for_report(page.get());
    _exit(1);
  });
  EXPECT_TRUE(r.signaled() && r.signal() == SIGSEGV) << r;
  const std::string& out = r.output;
  EXPECT_NE(out.find("SIGSEGV (SEGV_ACCERR)"), std::string::npos) << out;
  EXPECT_NE(out.find("address   " + hex(page.get() + 0x18)), std::string::npos) << out;
  EXPECT_NE(out.find("access write"), std::string::npos) << out;
  EXPECT_NE(out.find("mapping   "), std::string::npos) << out;
  EXPECT_NE(out.find("---p"), std::string::npos) << "the PROT_NONE mapping's line: " << out;
  EXPECT_NE(out.find("rip"), std::string::npos) << out;
  EXPECT_NE(out.find("backtrace"), std::string::npos) << out;
  EXPECT_NE(out.find("crash_here_for_report"), std::string::npos) << out;
  EXPECT_EQ(out.find("\033["), std::string::npos) << "no colour when told so";
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
  ChildResult r = run_child([&] {
    report::Options o;
    o.color = report::Color::always;
    if (!install().ok() || !report::enable(o).ok()) _exit(90);
    *reinterpret_cast<volatile char*>(page.get()) = 1;
  });
  EXPECT_NE(r.output.find("\033[1;31m"), std::string::npos) << r;
}

TEST(Report, NoColorIsHonouredOnAutomatic) {
  // The child's stderr is a pipe, so automatic means no colour regardless; check NO_COLOR parsing
  // through the API instead: enabling with automatic must succeed and not colour a pipe.
  Page page(PROT_NONE);
  ChildResult r = run_child([&] {
    setenv("NO_COLOR", "1", 1);
    if (!install().ok() || !report::enable().ok()) _exit(90);
    *reinterpret_cast<volatile char*>(page.get()) = 1;
  });
  EXPECT_TRUE(r.signaled()) << r;
  EXPECT_EQ(r.output.find("\033["), std::string::npos) << r;
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
    struct sigaction sa {};
    sa.sa_handler = [](int) { _exit(12); };
    sigaction(SIGSEGV, &sa, nullptr);
    if (!install().ok() || !report::enable().ok()) _exit(90);
    *reinterpret_cast<volatile char*>(page.get()) = 1;
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
