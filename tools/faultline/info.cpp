// tools/faultline/info.cpp: `faultline info`: the kernel's offer, as text or JSON.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "commands.hpp"
#include "faultline/kernel.hpp"
#include "faultline/kernel_mask.hpp"
#include "faultline/region.hpp"

namespace faultline::cli {

namespace {

std::string region_backend();

// One capability: how faultline provides it on this kernel (after the mask), and what is lost.
struct Capability {
  std::string name, mechanism, loss;
};

bool contains(const std::string& s, const char* what) { return s.find(what) != std::string::npos; }

FillStatus no_fill(const FillRequest&, void*) { return {}; }

// What reserve_region would choose for `o`: "userfaultfd (...)" / "signals: why", or the error.
std::string chosen(RegionOptions o) {
  auto c = explain_backend(o);
  return c ? c->reason : "refused: " + c.error().message();
}

std::vector<Capability> capabilities(const KernelInfo& k) {
  std::vector<Capability> out;
  const bool poison = std::any_of(k.uffd_feature_list.begin(), k.uffd_feature_list.end(),
                                  [](const UffdFeature& f) { return std::string(f.name) == "POISON" && f.available; });
  RegionOptions o;
  o.name = "info";
  o.policy = Policy::zero_fill;
  const std::string zero = chosen(o);
  const bool uffd = contains(zero, "userfaultfd (");
  const bool umo = contains(zero, "user-mode faults only");
  out.push_back({"zero_fill regions", zero,
                 uffd ? "" : "each fault is a signal and an mprotect; read-ahead is fault-around (MADV_POPULATE)"});
  o.policy = Policy::provider;
  o.fill = no_fill;
  out.push_back({"provider regions (content from a store)", chosen(o),
                 uffd ? "" : "a memfd mapped twice; a store that is not async-signal-safe is refused"});
  o.policy = Policy::pager;
  auto pager = Pager::start();
  if (pager) o.pager = *pager;
  out.push_back({"pager regions (a pager's threads)", pager ? chosen(o) : "refused: " + pager.error().message(), ""});
  o.pager = {};
  o.fill = no_fill;
  o.policy = Policy::provider;
  o.policy = Policy::zero_fill;
  o.fill = nullptr;
  o.userfaultfd_mode = UserfaultfdMode::self_service;
  out.push_back({"self-service fills (SIGBUS in the faulting thread)", chosen(o), ""});
  o.userfaultfd_mode = UserfaultfdMode::handler_thread;
  o.policy = Policy::track_dirty;
  const std::string dirty = chosen(o);
  out.push_back({"dirty tracking", dirty,
                 contains(dirty, "WP_ASYNC + PAGEMAP_SCAN")  ? ""
                 : contains(dirty, "userfaultfd (")          ? "a fault per first write to a page (no WP_ASYNC)"
                                                             : "a SIGSEGV and an mprotect per first write to a page"});
  out.push_back({"a failed fill", !uffd ? "SIGBUS raised in the faulting thread (signal backend)"
                                  : poison ? "UFFDIO_POISON: the page raises SIGBUS until discard()"
                                           : "SIGBUS queued to the faulting thread; the page is remembered as failed",
                 uffd && !poison ? "a thread that faults on a failed page later gets the SIGBUS from faultline's "
                                   "thread, not from the kernel"
                                 : ""});
  o.policy = Policy::provider;
  o.fill = no_fill;
  o.max_resident_pages = 64;
  const std::string evict = chosen(o);
  out.push_back({"write-back, evict(), max_resident_pages",
                 contains(evict, "refused") ? evict : "MADV_DONTNEED after write-back (UFFDIO_MOVE is not used)",
                 contains(evict, "refused") ? "not available" : ""});
  o.max_resident_pages = 0;
  o.fill = nullptr;
  o.policy = Policy::pager;
  o.remote_pager_socket = 0;  // only looked at, not used
  const std::string remote = chosen(o);
  out.push_back({"remote pager (another process)", remote, contains(remote, "refused") ? "not available" : ""});
  out.push_back({"system calls that meet a missing page",
                 uffd && !umo ? "filled by the handler thread (the kernel waits)" : "fail with EFAULT",
                 uffd && !umo ? "" : "call prefault() first"});
  out.push_back({"memory unmapped behind faultline's back",
                 uffd ? "userfaultfd UNMAP events (the unmap monitor)" : "/proc/self/maps only",
                 uffd ? "" : "anonymous memory mapped again at the same place cannot be told from the region's"});
  return out;
}

void print_kernels() {
  std::printf("%-22s %-8s %s\n", "facility", "since", "what faultline does with it");
  for (const auto& f : kernel_mask::facilities()) {
    const std::string since = f.major != 0 ? std::to_string(f.major) + "." + std::to_string(f.minor) : "setting";
    std::printf("%-22s %-8s %s\n", f.name, since.c_str(), f.use);
  }
}

nlohmann::json to_json(const KernelInfo& k) {
  nlohmann::json features = nlohmann::json::object();
  for (const auto& f : k.uffd_feature_list) features[f.name] = f.available;
  return {
      {"kernel", k.kernel_release},
      {"machine", k.machine},
      {"page_size", k.page_size},
      {"at_minsigstksz", k.at_minsigstksz},
      {"emulator", k.emulator},
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
      {"kernel_mask", kernel_mask::current()},
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

int run_info(const InfoArgs& args) {
  if (args.kernels) {
    print_kernels();
    return 0;
  }
  if (!args.as.empty()) {
    if (auto m = kernel_mask::set(args.as); !m) {
      std::fprintf(stderr, "faultline info --as: %s\n", m.error().message().c_str());
      return 2;
    }
  }
  KernelInfo k = probe_kernel();
  const std::vector<Capability> caps = capabilities(k);
  if (args.json) {
    nlohmann::json j = to_json(k);
    for (const Capability& c : caps) j["capabilities"].push_back({{"name", c.name}, {"mechanism", c.mechanism}, {"loss", c.loss}});
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  const std::string mask = kernel_mask::current();
  if (!mask.empty()) std::printf("kernel mask               %s (faultline behaves as on that kernel)\n", mask.c_str());
  std::printf("kernel                    %s (%s)\n", k.kernel_release.c_str(), k.machine.c_str());
  if (!k.emulator.empty()) std::printf("emulated                  %s\n", k.emulator.c_str());
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
  std::printf("\ncapabilities on this kernel%s\n", mask.empty() ? "" : (" (as " + mask + ")").c_str());
  for (const Capability& c : caps) {
    std::printf("  %-48s %s\n", c.name.c_str(), c.mechanism.c_str());
    if (!c.loss.empty()) std::printf("  %-48s   loses: %s\n", "", c.loss.c_str());
  }
  return 0;
}

}  // namespace faultline::cli
