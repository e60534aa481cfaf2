// os/linux/kernel_info.cpp: probing what the kernel offers (userfaultfd, PAGEMAP_SCAN, soft-dirty, ...).
// Not signal path.
#include <fcntl.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <signal.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>
#include <fstream>
#include <cstdio>
#include <string>

#include "faultline/kernel.hpp"
#include "os/linux/uffd.hpp"
#include "linux_uapi.hpp"

namespace faultline {

namespace {

std::string errno_text(int e) {
  const char* n = strerrorname_np(e);
  return std::string(n != nullptr ? n : "E?") + ": " + std::strerror(e);
}

std::string read_first_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  if (in) std::getline(in, line);
  return line;
}

long read_long(const char* path) {
  std::string s = read_first_line(path);
  if (s.empty()) return -1;
  try {
    return std::stol(s);
  } catch (...) {
    return -1;
  }
}

// Queries UFFDIO_API on a fresh userfaultfd: with features = 0 the kernel answers with every feature it
// supports.
bool uffd_api(int fd, KernelInfo& info) {
  return !os::is_err(os::uffd_api(fd, 0, &info.uffd_features, &info.uffd_ioctls));
}

void probe_uffd(KernelInfo& info) {
  // The two ways to open one, probed separately for the report. Without CAP_SYS_PTRACE and with
  // vm.unprivileged_userfaultfd=0, user-mode-only faults may still be allowed.
  const long sys = os::raw_syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
  const long sys_umo = sys == -EPERM ? os::raw_syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY) : sys;
  if (!os::is_err(sys_umo)) {
    info.uffd_syscall = true;
    info.uffd_syscall_status = sys == sys_umo ? "ok" : "ok (user-mode faults only)";
    uffd_api(static_cast<int>(sys_umo), info);
    os::raw_close(static_cast<int>(sys_umo));
  } else {
    info.uffd_syscall_status = errno_text(static_cast<int>(-sys_umo));
  }
  if (!os::is_err(sys) && sys != sys_umo) os::raw_close(static_cast<int>(sys));
  const long dev = os::raw_open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
  if (os::is_err(dev)) {
    info.uffd_dev_status = errno_text(static_cast<int>(-dev));
  } else {
    const long ufd = os::raw_syscall(SYS_ioctl, dev, static_cast<long>(USERFAULTFD_IOC_NEW), O_CLOEXEC | O_NONBLOCK);
    if (os::is_err(ufd)) {
      info.uffd_dev_status = errno_text(static_cast<int>(-ufd));
    } else {
      info.uffd_dev = true;
      info.uffd_dev_status = "ok";
      if (!info.uffd_syscall) uffd_api(static_cast<int>(ufd), info);
      os::raw_close(static_cast<int>(ufd));
    }
    os::raw_close(static_cast<int>(dev));
  }
  static constexpr struct {
    const char* name;
    std::uint64_t bit;
  } kFeatures[] = {
      {"PAGEFAULT_FLAG_WP", UFFD_FEATURE_PAGEFAULT_FLAG_WP},
      {"EVENT_FORK", UFFD_FEATURE_EVENT_FORK},
      {"EVENT_REMAP", UFFD_FEATURE_EVENT_REMAP},
      {"EVENT_REMOVE", UFFD_FEATURE_EVENT_REMOVE},
      {"MISSING_HUGETLBFS", UFFD_FEATURE_MISSING_HUGETLBFS},
      {"MISSING_SHMEM", UFFD_FEATURE_MISSING_SHMEM},
      {"EVENT_UNMAP", UFFD_FEATURE_EVENT_UNMAP},
      {"SIGBUS", UFFD_FEATURE_SIGBUS},
      {"THREAD_ID", UFFD_FEATURE_THREAD_ID},
      {"MINOR_HUGETLBFS", UFFD_FEATURE_MINOR_HUGETLBFS},
      {"MINOR_SHMEM", UFFD_FEATURE_MINOR_SHMEM},
      {"EXACT_ADDRESS", UFFD_FEATURE_EXACT_ADDRESS},
      {"WP_HUGETLBFS_SHMEM", UFFD_FEATURE_WP_HUGETLBFS_SHMEM},
      {"WP_UNPOPULATED", UFFD_FEATURE_WP_UNPOPULATED},
      {"POISON", UFFD_FEATURE_POISON},
      {"WP_ASYNC", UFFD_FEATURE_WP_ASYNC},
      {"MOVE", UFFD_FEATURE_MOVE},
  };
  for (const auto& f : kFeatures) {
    info.uffd_feature_list.push_back({f.name, f.bit, (info.uffd_features & f.bit) != 0});
  }
}

void probe_pagemap_scan(KernelInfo& info) {
  int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    info.pagemap_scan_status = errno_text(errno);
    return;
  }
  const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  void* p = mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    info.pagemap_scan_status = errno_text(errno);
    close(fd);
    return;
  }
  static_cast<volatile char*>(p)[0] = 1;
  page_region regions[4];
  const auto start = reinterpret_cast<std::uint64_t>(p);
  pm_scan_arg arg = pagemap_scan_arg(start, start + page, regions, 4, PAGE_IS_PRESENT);
  long r = os::pagemap_scan(fd, &arg);
  if (r >= 1) {
    info.pagemap_scan = true;
    info.pagemap_scan_status = "ok";
  } else {
    info.pagemap_scan_status = r < 0 ? errno_text(static_cast<int>(-r)) : "answered, but did not see a present page";
  }
  munmap(p, page);
  close(fd);
}

// Soft-dirty: clear the bits, write a page, and see whether pagemap's bit 55 comes back.
void probe_soft_dirty(KernelInfo& info) {
  const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  void* p = mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    info.soft_dirty_status = errno_text(errno);
    return;
  }
  static_cast<volatile char*>(p)[0] = 1;
  int cr = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
  int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (cr < 0 || pm < 0) {
    info.soft_dirty_status = errno_text(errno);
  } else if (write(cr, "4", 1) != 1) {
    info.soft_dirty_status = "writing 4 to /proc/self/clear_refs failed: " + errno_text(errno);
  } else {
    static_cast<volatile char*>(p)[0] = 2;
    std::uint64_t entry = 0;
    off_t off = static_cast<off_t>(reinterpret_cast<std::uintptr_t>(p) / page * sizeof entry);
    if (pread(pm, &entry, sizeof entry, off) != sizeof entry) {
      info.soft_dirty_status = "reading /proc/self/pagemap failed: " + errno_text(errno);
    } else if (entry & (1ull << 55)) {
      info.soft_dirty = true;
      info.soft_dirty_status = "ok";
    } else {
      info.soft_dirty_status = "not compiled into this kernel (clear_refs accepted 4, bit 55 stays 0)";
    }
  }
  if (cr >= 0) close(cr);
  if (pm >= 0) close(pm);
  munmap(p, page);
}

std::string thp_mode() {
  std::string s = read_first_line("/sys/kernel/mm/transparent_hugepage/enabled");
  auto a = s.find('['), b = s.find(']');
  return a != std::string::npos && b != std::string::npos && b > a ? s.substr(a + 1, b - a - 1) : "";
}

// Lateness of a one-shot thread-targeted timer on `clock`: arms it for `budget_us`, spins until its
// (blocked) signal is pending, and returns the median excess in microseconds. Runs on its own thread so
// that the caller's signal mask is untouched.
double timer_lateness_us(clockid_t clock, long budget_us) {
  double result = -1;
  std::thread t([&] {
    const int sig = SIGRTMAX - 1;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    struct sigevent ev{};
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev.sigev_signo = sig;
    ev._sigev_un._tid = static_cast<pid_t>(syscall(SYS_gettid));
    timer_t timer{};
    if (timer_create(clock, &ev, &timer) != 0) return;
    std::vector<double> late;
    for (int shot = 0; shot < 5; ++shot) {
      struct itimerspec its{};
      its.it_value.tv_nsec = budget_us * 1000;
      const auto t0 = std::chrono::steady_clock::now();
      timer_settime(timer, 0, &its, nullptr);
      sigset_t pending;
      for (;;) {
        sigpending(&pending);
        if (sigismember(&pending, sig)) break;
        if (std::chrono::steady_clock::now() - t0 > std::chrono::seconds(1)) break;
      }
      const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
      struct timespec zero{};
      sigtimedwait(&set, nullptr, &zero);
      late.push_back(us - static_cast<double>(budget_us));
    }
    timer_delete(timer);
    std::sort(late.begin(), late.end());
    result = late[late.size() / 2];
  });
  t.join();
  return result;
}

}  // namespace

// qemu-user passes the host's /proc/cpuinfo through: a CPU description of another architecture than
// the one this program was built for means an emulator runs it.
static std::string emulator_evidence() {
  std::FILE* f = std::fopen("/proc/cpuinfo", "r");
  if (f == nullptr) return "";
  char line[256];
  bool x86 = false, arm = false;
  for (int n = 0; n < 64 && std::fgets(line, sizeof line, f) != nullptr; ++n) {
    if (std::strncmp(line, "vendor_id", 9) == 0) x86 = true;
    if (std::strncmp(line, "CPU implementer", 15) == 0) arm = true;
  }
  std::fclose(f);
#if defined(__aarch64__)
  if (x86 && !arm) return "an aarch64 program on an x86-64 CPU (/proc/cpuinfo): qemu-user";
#elif defined(__x86_64__)
  if (arm && !x86) return "an x86-64 program on an Arm CPU (/proc/cpuinfo): an emulator";
#endif
  return "";
}

KernelInfo probe_kernel() {
  KernelInfo info;
  struct utsname u{};
  if (uname(&u) == 0) {
    info.kernel_release = u.release;
    info.machine = u.machine;
  }
  info.page_size = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  info.at_minsigstksz = static_cast<std::size_t>(getauxval(AT_MINSIGSTKSZ));
  info.emulator = emulator_evidence();
  probe_uffd(info);
  info.unprivileged_userfaultfd = static_cast<int>(read_long("/proc/sys/vm/unprivileged_userfaultfd"));
  probe_pagemap_scan(info);
  probe_soft_dirty(info);
  info.thp_mode = thp_mode();
  info.max_map_count = read_long("/proc/sys/vm/max_map_count");
  struct rlimit rl{};
  if (getrlimit(RLIMIT_SIGPENDING, &rl) == 0) {
    info.rlimit_sigpending = rl.rlim_cur == RLIM_INFINITY ? -1 : static_cast<long>(rl.rlim_cur);
  }
  if (getrlimit(RLIMIT_STACK, &rl) == 0) {
    info.rlimit_stack = rl.rlim_cur == RLIM_INFINITY ? -1 : static_cast<long>(rl.rlim_cur);
  }
  info.cpu_timer_late_us = timer_lateness_us(CLOCK_THREAD_CPUTIME_ID, 100);
  info.wall_timer_late_us = timer_lateness_us(CLOCK_MONOTONIC, 200);
  return info;
}

}  // namespace faultline
