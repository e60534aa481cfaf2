// faultline/kernel.hpp: what this kernel and machine offer faultline, probed at run time.
//
// `faultline info` prints this. Probing opens userfaultfds, reads /proc and /sys, and (for soft-dirty)
// writes 4 to /proc/self/clear_refs, which clears the soft-dirty bits of the whole process. Not
// async-signal-safe; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "faultline/result.hpp"

namespace faultline {

struct UffdFeature {
  const char* name;  // "WP_ASYNC"
  std::uint64_t bit;
  bool available;
};

struct KernelInfo {
  std::string kernel_release;   // uname -r
  std::string machine;          // uname -m
  std::size_t page_size = 0;
  std::size_t at_minsigstksz = 0;
  // userfaultfd through the system call and through /dev/userfaultfd: "ok", or why not ("EPERM: ...").
  bool uffd_syscall = false;
  std::string uffd_syscall_status;
  bool uffd_dev = false;
  std::string uffd_dev_status;
  std::uint64_t uffd_features = 0;     // from UFFDIO_API
  std::uint64_t uffd_ioctls = 0;       // UFFDIO_API's ioctls bit set
  std::vector<UffdFeature> uffd_feature_list;
  int unprivileged_userfaultfd = -1;   // vm.unprivileged_userfaultfd, -1 if unreadable
  bool pagemap_scan = false;
  std::string pagemap_scan_status;
  bool soft_dirty = false;
  std::string soft_dirty_status;
  std::string thp_mode;                // "always", "madvise", "never", or "" if unknown
  long max_map_count = -1;
  long rlimit_sigpending = -1;
  long rlimit_stack = -1;
  // Preemption timers, measured (median of a few shots, microseconds late; -1 if not measurable): a
  // 100 us CLOCK_THREAD_CPUTIME_ID timer (fires on the scheduler tick) and a 200 us thread-targeted
  // CLOCK_MONOTONIC timer.
  double cpu_timer_late_us = -1;
  double wall_timer_late_us = -1;
  // Empty on real hardware; otherwise why this process looks emulated (qemu-user: /proc/cpuinfo
  // describes the host's CPU, of another architecture). Timings then measure the emulator.
  std::string emulator;
};

// Probes the kernel. Never fails as a whole: what cannot be probed is reported in the fields.
KernelInfo probe_kernel();

}  // namespace faultline
