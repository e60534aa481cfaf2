// tools/faultline/info.cpp: `faultline info`: the kernel's offer, as text or JSON.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "commands.hpp"
#include "faultline/kernel.hpp"
#include "faultline/region.hpp"

namespace faultline::cli {

namespace {

std::string region_backend();

nlohmann::json to_json(const KernelInfo& k) {
  nlohmann::json features = nlohmann::json::object();
  for (const auto& f : k.uffd_feature_list) features[f.name] = f.available;
  return {
      {"kernel", k.kernel_release},
      {"machine", k.machine},
      {"page_size", k.page_size},
      {"at_minsigstksz", k.at_minsigstksz},
      {"userfaultfd",
       {{"syscall", k.uffd_syscall},
        {"syscall_status", k.uffd_syscall_status},
        {"dev_userfaultfd", k.uffd_dev},
        {"dev_userfaultfd_status", k.uffd_dev_status},
        {"features_mask", k.uffd_features},
        {"ioctls_mask", k.uffd_ioctls},
        {"features", features},
        {"vm_unprivileged_userfaultfd", k.unprivileged_userfaultfd}}},
      {"pagemap_scan", {{"available", k.pagemap_scan}, {"status", k.pagemap_scan_status}}},
      {"soft_dirty", {{"available", k.soft_dirty}, {"status", k.soft_dirty_status}}},
      {"thp_mode", k.thp_mode},
      {"vm_max_map_count", k.max_map_count},
      {"rlimit_sigpending", k.rlimit_sigpending},
      {"rlimit_stack", k.rlimit_stack},
      {"region_backend", region_backend()},
      {"preemption_timers",
       {{"cpu_time_100us_late_us", k.cpu_timer_late_us}, {"wall_200us_late_us", k.wall_timer_late_us}}},
  };
}

const char* yes(bool b) { return b ? "yes" : "no"; }

// What Backend::automatic picks for zero_fill/provider/pager/track_dirty regions, and why.
std::string region_backend() {
  auto u = userfaultfd_available();
  return u ? "userfaultfd" : "signals (" + u.error().message() + ")";
}

}  // namespace

std::string machine_json() {
  nlohmann::json j = to_json(probe_kernel());
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line, model = "unknown";
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  }
  j["cpu"] = model;
  j["online_cpus"] = sysconf(_SC_NPROCESSORS_ONLN);
  j["memory_bytes"] = static_cast<long long>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGESIZE);
  return j.dump();
}

int run_info(bool json) {
  KernelInfo k = probe_kernel();
  if (json) {
    std::printf("%s\n", to_json(k).dump(2).c_str());
    return 0;
  }
  std::printf("kernel                    %s (%s)\n", k.kernel_release.c_str(), k.machine.c_str());
  std::printf("page size                 %zu\n", k.page_size);
  std::printf("AT_MINSIGSTKSZ            %zu\n", k.at_minsigstksz);
  std::printf("userfaultfd syscall       %s (%s)\n", yes(k.uffd_syscall), k.uffd_syscall_status.c_str());
  std::printf("/dev/userfaultfd          %s (%s)\n", yes(k.uffd_dev), k.uffd_dev_status.c_str());
  std::printf("vm.unprivileged_userfaultfd %d\n", k.unprivileged_userfaultfd);
  std::printf("userfaultfd features      0x%llx\n", static_cast<unsigned long long>(k.uffd_features));
  for (const auto& f : k.uffd_feature_list) std::printf("  %-22s %s\n", f.name, yes(f.available));
  std::printf("PAGEMAP_SCAN              %s (%s)\n", yes(k.pagemap_scan), k.pagemap_scan_status.c_str());
  std::printf("soft-dirty                %s (%s)\n", yes(k.soft_dirty), k.soft_dirty_status.c_str());
  std::printf("THP mode                  %s\n", k.thp_mode.empty() ? "unknown" : k.thp_mode.c_str());
  std::printf("vm.max_map_count          %ld\n", k.max_map_count);
  std::printf("RLIMIT_SIGPENDING         %ld\n", k.rlimit_sigpending);
  std::printf("region backend (automatic) %s\n", region_backend().c_str());
  std::printf("CPU-time timer, 100 us    %.0f us late (fires on the scheduler tick)\n", k.cpu_timer_late_us);
  std::printf("wall-clock timer, 200 us  %.0f us late\n", k.wall_timer_late_us);
  std::printf("RLIMIT_STACK              %ld\n", k.rlimit_stack);
  return 0;
}

}  // namespace faultline::cli
