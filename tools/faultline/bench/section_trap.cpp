// tools/faultline/bench/section_trap.cpp: the fault round trip (protect a page, touch it, the handler
// unprotects it, the instruction runs again) with a bare sigaction handler as the baseline, against
// libsigsegv and against faultline's dispatcher with 1, 1 000 and 100 000 regions registered.
#include <dlfcn.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vector>

#include "bench/sections.hpp"
#include "faultline/region.hpp"

namespace faultline::bench {

namespace {

char* g_page = nullptr;
std::size_t g_psize = 4096;

void bare_handler(int, siginfo_t* si, void*) {
  char* a = static_cast<char*>(si->si_addr);
  if (a >= g_page && a < g_page + g_psize) {
    mprotect(g_page, g_psize, PROT_READ | PROT_WRITE);
    return;
  }
  signal(SIGSEGV, SIG_DFL);  // not ours: die of it
}

int sigsegv_lib_handler(void* addr, int) {
  char* a = static_cast<char*>(addr);
  if (a < g_page || a >= g_page + g_psize) return 0;
  mprotect(g_page, g_psize, PROT_READ | PROT_WRITE);
  return 1;
}

Disposition barrier_unprotect(FaultContext&, const RegionInfo& r, void*) {
  mprotect(reinterpret_cast<void*>(r.base), r.size, PROT_READ | PROT_WRITE);
  return Disposition::resolved;
}

double touch_loop(char* page, unsigned n) {
  const double t0 = now_ns();
  for (unsigned i = 0; i < n; ++i) {
    mprotect(page, g_psize, PROT_NONE);
    *reinterpret_cast<volatile char*>(page) = 1;
  }
  return (now_ns() - t0) / n;
}

// Runs `body` with `install` in place of the current SIGSEGV/SIGBUS actions, restoring them after.
template <class F>
double with_actions(const std::function<void()>& install, F body) {
  struct sigaction old_segv {}, old_bus {};
  sigaction(SIGSEGV, nullptr, &old_segv);
  sigaction(SIGBUS, nullptr, &old_bus);
  install();
  double ns = body();
  sigaction(SIGSEGV, &old_segv, nullptr);
  sigaction(SIGBUS, &old_bus, nullptr);
  return ns;
}

}  // namespace

void section_trap(Bench& b) {
  if (!b.wants("trap")) return;
  g_psize = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  const unsigned n = b.options().quick ? 300 : 2000;
  Mapping bare_page(g_psize, PROT_READ | PROT_WRITE);

  const Sampler bare = [&] {
    g_page = bare_page.data();
    return with_actions(
        [] {
          struct sigaction sa {};
          sa.sa_sigaction = bare_handler;
          sa.sa_flags = SA_SIGINFO;
          sigaction(SIGSEGV, &sa, nullptr);
        },
        [&] { return touch_loop(bare_page.data(), n); });
  };
  const std::string base = "bare sigaction handler";
  const Target dispatch{Target::Kind::ratio_at_most, 1.05, "<= 1.05x", "core/trap"};

  // libsigsegv, loaded at run time so that its absence is a note, not a build failure.
  if (void* lib = dlopen("libsigsegv.so.2", RTLD_NOW | RTLD_LOCAL); lib == nullptr) {
    b.unavailable("trap", "fault round trip: libsigsegv", base,
                  std::string("libsigsegv.so.2 not found (install libsigsegv2): ") + dlerror());
  } else {
    using Install = int (*)(int (*)(void*, int));
    using Deinstall = void (*)();
    auto inst = reinterpret_cast<Install>(dlsym(lib, "sigsegv_install_handler"));
    auto deinst = reinterpret_cast<Deinstall>(dlsym(lib, "sigsegv_deinstall_handler"));
    if (inst == nullptr || deinst == nullptr) {
      b.unavailable("trap", "fault round trip: libsigsegv", base, "libsigsegv.so.2 lacks sigsegv_install_handler");
    } else {
      Mapping lib_page(g_psize, PROT_READ | PROT_WRITE);
      b.compare("trap", "fault round trip: libsigsegv", base, bare, [&] {
        g_page = lib_page.data();
        return with_actions([&] { inst(sigsegv_lib_handler); },
                            [&] {
                              double ns = touch_loop(lib_page.data(), n);
                              deinst();
                              return ns;
                            });
      });
    }
  }

  // faultline: a barrier region whose barrier unprotects the page; more regions are guard pages adopted
  // in one PROT_NONE reservation (one mapping, so no VMA per region).
  RegionOptions o;
  o.name = "bench-barrier";
  o.policy = Policy::barrier;
  o.perms = perm_read | perm_write;
  o.barrier = barrier_unprotect;
  auto region = reserve_region(g_psize, o);
  if (!region) die("reserve_region: " + region.error().message());
  char* page = static_cast<char*>(region->data());
  const Sampler fl = [&] { return touch_loop(page, n); };

  const std::size_t max_regions = b.options().quick ? 10000 : 100000;
  Mapping guards((max_regions) * g_psize, PROT_NONE);
  std::vector<Region> others;
  others.reserve(max_regions);
  RegionOptions g;
  g.name = "bench-guard";
  g.policy = Policy::guard;
  g.perms = perm_none;
  std::size_t registered = 1;
  for (std::size_t count : {std::size_t{1}, std::size_t{1000}, max_regions}) {
    for (; registered < count; ++registered) {
      auto r = adopt_region(guards.data() + (registered - 1) * g_psize, g_psize, g);
      if (!r) die("adopt_region: " + r.error().message());
      others.push_back(std::move(*r));
    }
    b.compare("trap", "fault round trip: faultline, " + std::to_string(count) + " region" + (count > 1 ? "s" : ""),
              base, bare, fl, dispatch);
  }
  b.status("unregistering " + std::to_string(others.size()) + " regions");
  others.clear();
  b.clear_progress();
}

}  // namespace faultline::bench
