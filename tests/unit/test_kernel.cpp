// tests/test_kernel.cpp: probing the kernel, and `faultline info`.
#include <gtest/gtest.h>
#include <sys/utsname.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "faultline/kernel.hpp"
#include "support/signals.hpp"

namespace faultline {
namespace {

TEST(Kernel, ProbeReportsThisMachine) {
  KernelInfo k = probe_kernel();
  struct utsname u {};
  uname(&u);
  EXPECT_EQ(k.kernel_release, u.release);
  EXPECT_EQ(k.page_size, static_cast<std::size_t>(sysconf(_SC_PAGESIZE)));
  if (!test::under_emulator()) {
    EXPECT_GT(k.at_minsigstksz, 0u);  // qemu-user gives 0
  }
  EXPECT_FALSE(k.uffd_syscall_status.empty());
  EXPECT_FALSE(k.uffd_dev_status.empty());
  EXPECT_EQ(k.uffd_feature_list.size(), 17u);
  if (k.uffd_syscall || k.uffd_dev) {
    EXPECT_NE(k.uffd_features, 0u);
    EXPECT_NE(k.uffd_ioctls, 0u);
  }
  EXPECT_FALSE(k.pagemap_scan_status.empty());
  EXPECT_FALSE(k.soft_dirty_status.empty());
  EXPECT_GT(k.max_map_count, 0);
}

std::string run(const std::string& cmd, int* status) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  std::size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  *status = pclose(p);
  return out;
}

TEST(Cli, InfoPrintsTextAndJson) {
  const char* cli = std::getenv("FAULTLINE_CLI");
  if (cli == nullptr) GTEST_SKIP() << "FAULTLINE_CLI not set (run through ctest)";
  FAULTLINE_SKIP_UNDER_EMULATOR(test::kQemuNoExec);
  int st = -1;
  std::string text = run(std::string(cli) + " info", &st);
  EXPECT_EQ(st, 0);
  EXPECT_NE(text.find("userfaultfd syscall"), std::string::npos) << text;
  EXPECT_NE(text.find("WP_ASYNC"), std::string::npos) << text;
  EXPECT_NE(text.find("PAGEMAP_SCAN"), std::string::npos) << text;
  std::string json = run(std::string(cli) + " info --json", &st);
  EXPECT_EQ(st, 0);
  EXPECT_EQ(json.front(), '{');
  EXPECT_NE(json.find("\"features\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"vm_max_map_count\""), std::string::npos) << json;
  std::string bad = run(std::string(cli) + " info --nonsense 2>&1", &st);
  EXPECT_NE(st, 0);
}

}  // namespace
}  // namespace faultline
