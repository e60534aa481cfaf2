// tools/faultline/bench/section_regions.cpp: the region table and the signal backend's policies.
//   - lookup of a faulting address among 1 000 and 100 000 regions (and while another thread registers
//     and unregisters regions), against a std::map of the same ranges;
//   - a resolved zero-fill fault against a bare handler doing the same work (mprotect + populate);
//   - first touch of N pages, sequential and random: zero-fill and content-initialised regions with
//     fault-around against the kernel's own demand-zero faults.
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <map>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "bench/sections.hpp"
#include "faultline/internal/bench.hpp"
#include "faultline/region.hpp"
#include "linux_uapi.hpp"


namespace faultline::bench {

namespace {

std::size_t g_psize = 4096;

// --- lookup -----------------------------------------------------------------------------------------

double lookup_sample(const std::vector<std::uintptr_t>& addrs, unsigned n) {
  std::uintptr_t sink = 0;
  const double t0 = now_ns();
  for (unsigned done = 0; done < n; done += 1024) {
    // A fault handler holds the trap epoch while it looks up; so does the hook, per batch.
    sink += internal::bench_lookup_batch(addrs.data(), addrs.size(), done, 1024);
  }
  const double ns = (now_ns() - t0) / n;
  if (sink == 1) std::fputs("", stderr);  // keep the lookups
  return ns;
}

double map_sample(const std::map<std::uintptr_t, std::uintptr_t>& m, const std::vector<std::uintptr_t>& addrs,
                  unsigned n) {
  std::uintptr_t sink = 0;
  const double t0 = now_ns();
  for (unsigned done = 0; done < n; ++done) {
    const std::uintptr_t a = addrs[done % addrs.size()];
    auto it = m.upper_bound(a);
    if (it != m.begin() && a < (--it)->second) sink += it->first;
    asm volatile("" : "+r"(sink));
  }
  const double ns = (now_ns() - t0) / n;
  if (sink == 1) std::fputs("", stderr);
  return ns;
}

void lookup_rows(Bench& b) {
  const unsigned n = b.options().quick ? 200'000 : 2'000'000;
  const std::size_t max_regions = b.options().quick ? 10000 : 100000;
  Mapping space(max_regions * g_psize, PROT_NONE);
  std::vector<Region> regions;
  regions.reserve(max_regions);
  std::map<std::uintptr_t, std::uintptr_t> map;
  RegionOptions g;
  g.name = "bench-lookup";
  g.policy = Policy::guard;
  g.perms = perm_none;
  std::mt19937_64 rng(42);
  const Target fast{Target::Kind::ns_at_most, 50, "<= 50 ns", "regions"};
  for (std::size_t count : {std::size_t{10}, std::size_t{1000}, max_regions}) {
    while (regions.size() < count) {
      char* p = space.data() + regions.size() * g_psize;
      auto r = adopt_region(p, g_psize, g);
      if (!r) die("adopt_region: " + r.error().message());
      regions.push_back(std::move(*r));
      map[reinterpret_cast<std::uintptr_t>(p)] = reinterpret_cast<std::uintptr_t>(p) + g_psize;
    }
    std::vector<std::uintptr_t> addrs(8192);
    for (auto& a : addrs) a = reinterpret_cast<std::uintptr_t>(space.data()) + (rng() % (count * g_psize));
    const std::string name = "lookup, " + std::to_string(count) + " regions";
    b.compare("regions", name, "std::map::upper_bound", [&] { return map_sample(map, addrs, n); },
              [&] { return lookup_sample(addrs, n); }, count == max_regions ? std::optional(fast) : std::nullopt);
    if (count != max_regions) continue;
    // The same while another thread registers and unregisters a region as fast as it can.
    std::atomic<bool> stop{false};
    std::atomic<unsigned long> churns{0};
    RegionOptions c = g;
    c.name = "bench-churn";
    std::thread churn([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        auto r = reserve_region(g_psize, c);
        if (!r) die("reserve_region: " + r.error().message());
        churns.fetch_add(1, std::memory_order_relaxed);
      }
    });
    Row& row = b.compare("regions", name + ", concurrent register/unregister", "std::map::upper_bound",
                         [&] { return map_sample(map, addrs, n); }, [&] { return lookup_sample(addrs, n); }, fast);
    stop = true;
    churn.join();
    row.note = std::to_string(churns.load()) + " regions registered and unregistered meanwhile";
  }
  b.status("unregistering " + std::to_string(regions.size()) + " regions");
  regions.clear();
  b.clear_progress();
}

// --- zero-fill fault against a bare handler ---------------------------------------------------------

char* g_bare = nullptr;
std::size_t g_bare_len = 0;

void bare_zero_fill(int, siginfo_t* si, void*) {
  char* a = static_cast<char*>(si->si_addr);
  if (a < g_bare || a >= g_bare + g_bare_len) {
    signal(SIGSEGV, SIG_DFL);
    return;
  }
  char* page = g_bare + (static_cast<std::size_t>(a - g_bare) / g_psize) * g_psize;
  mprotect(page, g_psize, PROT_READ | PROT_WRITE);
  madvise(page, g_psize, MADV_POPULATE_WRITE);
}

double touch_pages(char* p, const std::vector<std::size_t>& order) {
  const double t0 = now_ns();
  for (std::size_t i : order) p[i * g_psize] = 1;
  return (now_ns() - t0) / static_cast<double>(order.size());
}

void zero_fill_fault_row(Bench& b) {
  const std::size_t pages = b.options().quick ? 128 : 512;
  std::vector<std::size_t> seq(pages);
  std::iota(seq.begin(), seq.end(), 0);
  Mapping bare(pages * g_psize, PROT_NONE);
  RegionOptions o;
  o.name = "bench-zero-fill";
  o.backend = Backend::signals;  // this section measures the signal backend (userfaultfd has its own)
  auto region = reserve_region(pages * g_psize, o);
  if (!region) die("reserve_region: " + region.error().message());
  const Sampler base = [&] {
    g_bare = bare.data();
    g_bare_len = bare.size();
    struct sigaction sa {}, old{};
    sa.sa_sigaction = bare_zero_fill;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, &old);
    double ns = touch_pages(bare.data(), seq);
    sigaction(SIGSEGV, &old, nullptr);
    madvise(bare.data(), bare.size(), MADV_DONTNEED);
    mprotect(bare.data(), bare.size(), PROT_NONE);
    return ns;
  };
  const Sampler cand = [&] {
    double ns = touch_pages(static_cast<char*>(region->data()), seq);
    if (!region->discard(0, pages)) die("discard failed");
    return ns;
  };
  b.compare("regions", "zero-fill fault, 1 page per fault", "bare handler: mprotect + populate", base, cand,
            Target{Target::Kind::ratio_at_most, 1.05, "<= 1.05x", "regions"});
}

// --- first touch ------------------------------------------------------------------------------------

void first_touch_rows(Bench& b) {
  const std::size_t pages = b.options().quick ? std::min<std::size_t>(b.options().pages, 1024) : b.options().pages;
  std::vector<std::size_t> seq(pages), rnd(pages);
  std::iota(seq.begin(), seq.end(), 0);
  rnd = seq;
  std::shuffle(rnd.begin(), rnd.end(), std::mt19937_64(7));
  Mapping kernel(pages * g_psize, PROT_READ | PROT_WRITE);
  const auto kernel_sampler = [&](const std::vector<std::size_t>& order) -> Sampler {
    return [&, order] {
      double ns = touch_pages(kernel.data(), order);
      madvise(kernel.data(), kernel.size(), MADV_DONTNEED);
      return ns;
    };
  };
  const std::string base = "kernel demand-zero fault";
  const std::size_t around = 64;
  struct Kind {
    const char* label;
    Policy policy;
  };
  for (Kind k : {Kind{"zero-fill", Policy::zero_fill}, Kind{"content-initialised", Policy::provider}}) {
    RegionOptions o;
    o.name = std::string("bench-") + k.label;
    o.backend = Backend::signals;
    o.policy = k.policy;
    o.fault_around = around;
    if (k.policy == Policy::provider) o.fill = fill_pattern;
    auto region = reserve_region(pages * g_psize, o);
    if (!region) die("reserve_region: " + region.error().message());
    char* p = static_cast<char*>(region->data());
    for (const auto* order : {&seq, &rnd}) {
      const bool sequential = order == &seq;
      const Sampler cand = [&, order] {
        double ns = touch_pages(p, *order);
        if (!region->discard(0, pages)) die("discard failed");
        return ns;
      };
      std::optional<Target> t;
      if (k.policy == Policy::zero_fill && sequential) {
        t = Target{Target::Kind::ratio_at_most, 1.0, "< 1x (faster than the kernel)", "regions"};
      }
      Row& row = b.compare("regions",
                           std::string("first touch ") + (sequential ? "sequential" : "random") + ", " + k.label + ", " +
                               std::to_string(around) + " pages/fault",
                           base, kernel_sampler(*order), cand, t);
      row.note = std::to_string(pages) + " pages of " + std::to_string(g_psize) + " bytes per sample";
      b.attach_floor(row, k.policy == Policy::provider ? "populate_content" : "populate");
    }
  }
}


// First touch of a large range with 2 MiB pages (RegionOptions::huge_pages: one fault per 2 MiB block,
// backed by a transparent huge page where the kernel has one) against the kernel's 4 KiB demand faults.
void huge_page_row(Bench& b) {
  const std::size_t bytes = b.options().quick ? (std::size_t{64} << 20) : (std::size_t{1} << 30);
  const std::string name = std::string("first touch of ") + (b.options().quick ? "64 MiB" : "1 GiB") +
                           ", zero-fill, 2 MiB pages";
  RegionOptions o;
  o.name = "bench-huge";
  o.huge_pages = true;
  auto region = reserve_region(bytes, o);
  if (!region) {
    b.unavailable("regions", name, "kernel demand-zero faults, 4 KiB pages", region.error().message());
    return;
  }
  Mapping kernel(bytes, PROT_READ | PROT_WRITE);
  const std::size_t pages = bytes / g_psize;
  const auto touch_all = [pages](char* p) {
    const double t0 = now_ns();
    for (std::size_t i = 0; i < pages; ++i) p[i * g_psize] = 1;
    return (now_ns() - t0) / static_cast<double>(pages);
  };
  Row& row = b.compare("regions", name, "kernel demand-zero faults, 4 KiB pages",
                       [&] {
                         const double ns = touch_all(kernel.data());
                         madvise(kernel.data(), kernel.size(), MADV_DONTNEED);
                         return ns;
                       },
                       [&] {
                         const double ns = touch_all(static_cast<char*>(region->data()));
                         if (!region->discard(0, pages)) die("discard failed");
                         return ns;
                       });
  row.note = "per 4 KiB page touched; " + std::to_string(region->stats().fills) + " fills in all";
}

}  // namespace

void section_regions(Bench& b) {
  if (!b.wants("regions")) return;
  g_psize = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  lookup_rows(b);
  zero_fill_fault_row(b);
  first_touch_rows(b);
  huge_page_row(b);
}

}  // namespace faultline::bench
