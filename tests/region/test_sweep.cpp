// tests/region/test_sweep.cpp: the fault-injection sweep. For every policy on every backend that serves
// it, a fixed scenario (register, fault, fill, write, collect or flush, evict, discard, fork, reset) is
// first run counting the calls it makes of each named operation, then run once more for every operation
// and every k it reaches, with the k-th call of that operation failing. Each run must end in one of:
//   - success with the right bytes (the failure was absorbed: a retry, a fallback, a best-effort call);
//   - a call that returns an error with a message;
//   - SIGBUS or SIGSEGV with faultline's report naming the cause;
// never a hang (each run is bounded), never wrong bytes, never a change outside memory faultline mapped
// or adopted (the observer records every munmap/mprotect/madvise faultline issues and the run checks each
// against the mappings faultline made and still holds). FAULTLINE_SWEEP_SAMPLE=N runs every Nth k only
// (the sanitizer presets).
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "faultline/fault_injection.hpp"
#include "faultline/region.hpp"
#include "faultline/report.hpp"
#include "support/backends.hpp"
#include "support/child.hpp"
#include "support/pages.hpp"

namespace faultline {
namespace {

using namespace test;  // tests/support/
using fault_injection::Op;

// ---- the observer: what faultline maps, unmaps and changes, in order --------------------------------

struct Call {
  std::uint8_t op;
  std::uintptr_t a1, a2;
  long result;
};
constexpr std::size_t kLog = 1 << 16;
Call g_log[kLog];
std::atomic<std::size_t> g_logged{0};

void observer(Op op, std::uintptr_t a1, std::uintptr_t a2, std::uintptr_t, long result, void*) {
  if (op != Op::mmap && op != Op::munmap && op != Op::mprotect && op != Op::madvise) return;
  const std::size_t i = g_logged.fetch_add(1, std::memory_order_relaxed);
  if (i < kLog) g_log[i] = Call{static_cast<std::uint8_t>(op), a1, a2, result};
}

// Every munmap/mprotect/madvise lies inside a mapping faultline made and has not unmapped since. Returns
// an empty string, or the first offence.
std::string check_log() {
  const std::size_t n = std::min(g_logged.load(), kLog);
  std::map<std::uintptr_t, std::uintptr_t> owned;  // start -> end
  auto inside = [&](std::uintptr_t a, std::uintptr_t len) {
    auto it = owned.upper_bound(a);
    if (it == owned.begin()) return false;
    --it;
    return a >= it->first && a + len <= it->second;
  };
  for (std::size_t i = 0; i < n; ++i) {
    const Call& c = g_log[i];
    const auto op = static_cast<Op>(c.op);
    if (op == Op::mmap) {
      if (c.result > 0 || (c.result < 0 && c.result < -4095)) owned[static_cast<std::uintptr_t>(c.result)] =
          static_cast<std::uintptr_t>(c.result) + c.a2;
      continue;
    }
    if (c.result < 0 && c.result > -4096 && c.result != -ENOMEM && op != Op::madvise) continue;
    if (!inside(c.a1, c.a2)) {
      char b[160];
      std::snprintf(b, sizeof b, "%s of [%#lx, +%#lx) outside every mapping faultline made", fault_injection::op_name(op),
                    static_cast<unsigned long>(c.a1), static_cast<unsigned long>(c.a2));
      return b;
    }
    if (op == Op::munmap && c.result == 0) {
      auto it = owned.find(c.a1);
      if (it != owned.end() && it->second == c.a1 + c.a2) owned.erase(it);
    }
  }
  return {};
}

// ---- the scenario ----------------------------------------------------------------------------------

struct SweepCase {
  const char* name;
  Policy policy;
  BackendCase backend;
};

std::uint8_t expected_byte(Policy p, std::size_t off) {
  if (p == Policy::zero_fill || p == Policy::track_dirty) return 0;
  const std::uint64_t w = pattern(31, off & ~std::size_t{7});
  std::uint8_t b[8];
  std::memcpy(b, &w, 8);
  return b[off % 8];
}

// Runs in a forked child. 0: done, right bytes; 1..9: wrong bytes or a broken promise; 11..19: a call
// returned an error (its message is on stderr).
int scenario(const SweepCase& c) {
  // The report maps its spare stack: a failure there is an error with a message, like any other call's.
  if (auto enabled = report::enable(); !enabled.ok()) {
    std::fprintf(stderr, "report::enable: %s\n", enabled.error().message().c_str());
    return 11;
  }
  std::vector<char> backing(16 * kPage);
  for (std::size_t off = 0; off < backing.size(); off += 8) {
    const std::uint64_t w = pattern(31, off);
    std::memcpy(&backing[off], &w, 8);
  }
  VectorStore store(backing);
  auto say = [](const char* step, const Error& e) {
    std::fprintf(stderr, "sweep: %s failed: %s\n", step, e.message().c_str());
    return e.message().empty() ? 8 : 0;
  };
  RegionOptions o;
  o.name = "swept";
  o.policy = c.policy;
  o.backend = c.backend.backend;
  o.userfaultfd_mode = c.backend.mode;
  o.fill_path = c.backend.fill_path;
  o.fill_timeout = std::chrono::milliseconds(500);
  const bool filled = c.policy == Policy::provider || c.policy == Policy::pager;
  const bool write_back = filled && c.backend.backend == Backend::userfaultfd && c.backend.mode == UserfaultfdMode::handler_thread;
  if (filled) o.store = &store;
  if (write_back) o.write_back = true;
  Pager pager;
  if (c.policy == Policy::pager) {
    auto p = Pager::start({.name = "sweep", .threads = 1});
    if (!p) return say("Pager::start", p.error()) + 11;
    pager = *p;
    o.pager = pager;
  }
  auto reg = reserve_region(16 * kPage, o);
  if (!reg) return say("reserve_region", reg.error()) + 12;
  auto* p = static_cast<volatile std::uint8_t*>(reg->data());
  for (std::size_t i = 0; i < 8; ++i) {
    if (p[i * kPage + 17] != expected_byte(c.policy, i * kPage + 17)) return 1;
  }
  p[3 * kPage + 5] = 0xAB;
  if (p[3 * kPage + 5] != 0xAB) return 2;
  if (c.policy == Policy::track_dirty) {
    auto d = reg->collect_dirty();
    if (!d) return say("collect_dirty", d.error()) + 15;
    if (std::find(d->begin(), d->end(), std::size_t{3}) == d->end()) return 3;
  }
  if (auto dis = reg->discard(4, 2); !dis) return say("discard", dis.error()) + 16;
  if (p[4 * kPage + 9] != expected_byte(c.policy, 4 * kPage + 9)) return 4;
  if (write_back) {
    if (auto f = reg->flush(); !f) return say("flush", f.error()) + 17;
    if (auto e = reg->evict(0, 4); !e) return say("evict", e.error()) + 18;
    if (p[3 * kPage + 5] != 0xAB) return 5;  // stored, dropped, filled again from the store
  }
  std::fflush(nullptr);
  const pid_t child = fork();
  if (child == 0) {
    // The child may read the right bytes, or fail with a signal and a report; the parent's region is
    // none of its business.
    const std::uint8_t v = p[10 * kPage + 3];
    _exit(v == expected_byte(c.policy, 10 * kPage + 3) ? 0 : 1);
  }
  int status = 0;
  waitpid(child, &status, 0);
  if (WIFEXITED(status) ? WEXITSTATUS(status) != 0
                        : (WTERMSIG(status) != SIGBUS && WTERMSIG(status) != SIGSEGV)) {
    return 6;
  }
  if (p[3 * kPage + 5] != 0xAB) return 7;  // the child changed nothing of ours
  if (auto r = reg->reset(); !r) return say("reset", r.error()) + 19;
  return 0;
}

int errno_for(Op op) {
  switch (op) {
    case Op::uffdio_api: return EINVAL;
    case Op::pread: case Op::pwrite: return EIO;
    case Op::tgkill: case Op::rt_tgsigqueueinfo: case Op::thread_create: case Op::timer_create: return EAGAIN;
    case Op::open: case Op::memfd_create: case Op::eventfd: case Op::userfaultfd: return EMFILE;
    case Op::sendmsg: return EPIPE;
    case Op::pagemap_scan: return EFAULT;
    default: return ENOMEM;
  }
}

struct Outcomes {
  int runs = 0, ok = 0, error = 0, signal = 0, bad = 0;
  std::string failures;
};

class Sweep : public ::testing::TestWithParam<SweepCase> {};

TEST_P(Sweep, EveryFailureEndsWell) {
  const SweepCase& c = GetParam();
  if (c.backend.backend == Backend::userfaultfd) FAULTLINE_SKIP_WITHOUT_USERFAULTFD();
  if (c.backend.backend == Backend::signals) FAULTLINE_SKIP_UNDER_EMULATOR(kQemuSigbusToSelf);
  if (c.backend.fill_path == FillPath::shmem_cache && !shmem_cache_here()) {
    GTEST_SKIP() << "no shmem cache for write-back regions on this kernel";
  }
  // Count what the scenario calls.
  Shared<std::array<std::uint64_t, static_cast<unsigned>(Op::count)>> counted;
  ChildResult counting = run_child([&] {
    fault_injection::count_only();
    const int rc = scenario(c);
    for (unsigned i = 0; i < static_cast<unsigned>(Op::count); ++i) (*counted)[i] = fault_injection::calls(static_cast<Op>(i));
    fault_injection::disarm();
    _exit(rc);
  }, 30);
  ASSERT_TRUE(counting.exited() && counting.exit_code() == 0) << "the scenario fails without injection: " << counting;
  // The case over the shmem cache reaches its operations.
  if (c.backend.fill_path == FillPath::shmem_cache) {
    EXPECT_GT((*counted)[static_cast<unsigned>(Op::uffdio_continue)], 0u);
    EXPECT_GT((*counted)[static_cast<unsigned>(Op::fallocate)], 0u);
    EXPECT_GT((*counted)[static_cast<unsigned>(Op::memfd_create)], 0u);
  }
  const char* sample_env = std::getenv("FAULTLINE_SWEEP_SAMPLE");
  const std::uint64_t sample = sample_env != nullptr ? std::max(1, std::atoi(sample_env)) : 1;
  Outcomes out;
  int points = 0;
  for (unsigned i = 0; i < static_cast<unsigned>(Op::count); ++i) {
    const Op op = static_cast<Op>(i);
    // Each call failing alone; then every call from the first, and from the middle one, failing for good
    // (a persistent failure: retry loops must end too). persistent > 0 marks those runs.
    std::vector<std::pair<std::uint64_t, std::uint64_t>> plan;  // (k, count)
    for (std::uint64_t k = 1; k <= (*counted)[i]; k += sample) plan.emplace_back(k, 1);
    if ((*counted)[i] > 0) {
      plan.emplace_back(1, 0);
      if ((*counted)[i] > 2) plan.emplace_back((*counted)[i] / 2 + 1, 0);
    }
    for (const auto& step : plan) {
      const std::uint64_t k = step.first, count = step.second;  // (clang 14: no structured bindings in lambdas)
      ++points;
      ChildResult r = run_child([&] {
        g_logged = 0;
        fault_injection::set_observer(observer, nullptr);
        if (!fault_injection::arm({{op, k, count, errno_for(op)}}).ok()) _exit(90);
        const int rc = scenario(c);
        fault_injection::disarm();
        if (rc == 0 || (rc >= 11 && rc <= 19)) {
          const std::string offence = check_log();
          if (!offence.empty()) {
            std::fprintf(stderr, "sweep: %s\n", offence.c_str());
            _exit(99);
          }
        }
        _exit(rc);
      }, 20);
      ++out.runs;
      const bool reported = r.output.find("faultline") != std::string::npos &&
                            (r.output.find("cause") != std::string::npos || r.output.find("region") != std::string::npos);
      std::string verdict;
      if (r.exited() && r.exit_code() == 0) {
        ++out.ok;
      } else if (r.exited() && r.exit_code() >= 11 && r.exit_code() <= 19) {
        ++out.error;
      } else if (r.signaled() && (r.signal() == SIGBUS || r.signal() == SIGSEGV) && reported) {
        ++out.signal;
      } else {
        ++out.bad;
        char head[96];
        std::snprintf(head, sizeof head, "\n--- %s call %llu%s failing with %s: ", fault_injection::op_name(op),
                      static_cast<unsigned long long>(k), count == 0 ? " and every later one" : "",
                      strerrorname_np(errno_for(op)));
        out.failures += head + r.describe().substr(0, 1500);
      }
    }
  }
  std::printf("[sweep %s] %d injection points: %d right bytes, %d errors with a message, %d signals with a report, "
              "%d broken\n", c.name, points, out.ok, out.error, out.signal, out.bad);
  EXPECT_EQ(out.bad, 0) << out.failures;
}

constexpr BackendCase kSignals{"signals", Backend::signals, UserfaultfdMode::handler_thread};
constexpr BackendCase kThread{"uffd_thread", Backend::userfaultfd, UserfaultfdMode::handler_thread};
constexpr BackendCase kCache{"uffd_cache", Backend::userfaultfd, UserfaultfdMode::handler_thread, FillPath::shmem_cache};
constexpr BackendCase kSelf{"uffd_self", Backend::userfaultfd, UserfaultfdMode::self_service};

INSTANTIATE_TEST_SUITE_P(All, Sweep,
                         ::testing::Values(SweepCase{"zero_fill_signals", Policy::zero_fill, kSignals},
                                           SweepCase{"zero_fill_uffd_thread", Policy::zero_fill, kThread},
                                           SweepCase{"zero_fill_uffd_self", Policy::zero_fill, kSelf},
                                           SweepCase{"provider_signals", Policy::provider, kSignals},
                                           SweepCase{"provider_uffd_thread", Policy::provider, kThread},
                                           SweepCase{"provider_uffd_cache", Policy::provider, kCache},
                                           SweepCase{"provider_uffd_self", Policy::provider, kSelf},
                                           SweepCase{"pager_signals", Policy::pager, kSignals},
                                           SweepCase{"pager_uffd_thread", Policy::pager, kThread},
                                           SweepCase{"track_dirty_signals", Policy::track_dirty, kSignals},
                                           SweepCase{"track_dirty_uffd_thread", Policy::track_dirty, kThread}),
                         [](const auto& p) { return std::string(p.param.name); });

}  // namespace
}  // namespace faultline
