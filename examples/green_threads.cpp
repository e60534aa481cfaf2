// examples/green_threads.cpp: a preemptive green-thread scheduler (Shadow style), on faultline's public
// API only.
//
// Several green threads share one OS thread. Each runs a computation with no yield point at all: tight
// loops of integer and floating-point arithmetic that never call the scheduler. Preemption makes them
// share the CPU anyway:
//
//   - before switching to a green thread, the scheduler arms a CPU-time budget for the OS thread
//     (preempt::enable, Clock::cpu_time by default, or --wall);
//   - when the budget is spent, faultline interrupts the thread and runs our handler in signal context;
//     the handler cannot switch stacks there, so it injects a call (inject_call) and returns;
//   - the injected call runs as ordinary code on the green thread's own stack and switches to the
//     scheduler (swapcontext); the scheduler picks the next green thread, round robin;
//   - when the interrupted green thread's turn comes again, swapcontext returns into the injected call,
//     which returns into faultline's trampoline, which restores every register (general, flags, FP/SIMD)
//     and resumes the loop at the very instruction where it was interrupted.
//
// The program checks that the scheduling is fair (in every round, every unfinished green thread ran and
// made progress: its private counter moved) and that the interrupted computations are exact (each
// result equals the same computation run without preemption, bit for bit, including the doubles).
//
//   faultline_green_threads_demo [--wall]
//
// Prints the rounds, the preemptions and "green threads: fair and exact" (exit 0), or what went wrong
// (exit 1).
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "faultline/faultline.hpp"

namespace {

constexpr int kGreen = 4;
constexpr std::size_t kStackBytes = 256 * 1024;

// The computation: a chain of xorshift steps mixed with a double-precision recurrence, so that both the
// general registers and the SIMD registers hold live state at any instruction a preemption may hit.
struct Result {
  std::uint64_t x;
  double y;
  bool operator==(const Result& o) const { return x == o.x && std::memcmp(&y, &o.y, sizeof y) == 0; }
};

// `progress` is bumped every 4096 steps (a plain store, not a yield point).
Result compute(std::uint64_t seed, std::uint64_t steps, volatile std::uint64_t* progress) {
  std::uint64_t x = seed;
  double y = static_cast<double>(seed % 1000) / 7.0;
  for (std::uint64_t i = 0; i < steps; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    y = y * 0.999999 + static_cast<double>(x & 0xffff) * 1e-6;
    if ((i & 4095) == 0 && progress != nullptr) *progress = *progress + 1;
  }
  return Result{x, y};
}

struct Green {
  ucontext_t ctx;
  void* stack = nullptr;
  std::uint64_t seed = 0, steps = 0;
  volatile std::uint64_t progress = 0;
  Result result{};
  bool done = false;
  unsigned preemptions = 0;
};

Green g_green[kGreen];
ucontext_t g_scheduler;
int g_current = -1;
std::atomic<unsigned> g_inject_failures{0};
const char* g_inject_failure = "";

// Injected into a preempted green thread: runs on its stack as ordinary code, switches to the scheduler,
// and returns (into faultline's trampoline) when the scheduler switches back.
void yield_to_scheduler(void*) {
  Green& g = g_green[g_current];
  ++g.preemptions;
  swapcontext(&g.ctx, &g_scheduler);
}

// A budget that ran out while the scheduler itself ran (after a green thread finished early): faultline
// delivers it at the next enable(), on the scheduler's stack, which must not be switched away from.
volatile bool g_spent_in_scheduler = false;

// The preemption handler: signal context. Hands the switch to the injected call.
void on_budget_spent(faultline::FaultContext& ctx, void*) {
  const auto lo = reinterpret_cast<std::uintptr_t>(g_green[g_current].stack);
  if (ctx.sp() < lo || ctx.sp() >= lo + kStackBytes) {
    g_spent_in_scheduler = true;  // not in the green thread: the scheduler arms a fresh budget
    return;
  }
  const faultline::InjectStatus s = faultline::inject_call(ctx, yield_to_scheduler, nullptr);
  if (s != faultline::InjectStatus::ok) {
    g_inject_failure = faultline::inject_status_name(s);
    g_inject_failures.fetch_add(1, std::memory_order_relaxed);
  }
}

void green_main(int i) {
  Green& g = g_green[i];
  g.result = compute(g.seed, g.steps, &g.progress);
  g.done = true;
  // Returning ends the context: uc_link takes us back to the scheduler.
}

}  // namespace

int main(int argc, char** argv) {
  const bool wall = argc > 1 && std::strcmp(argv[1], "--wall") == 0;
  const auto clock = wall ? faultline::preempt::Clock::wall : faultline::preempt::Clock::cpu_time;
  if (auto r = faultline::install(); !r) {
    std::fprintf(stderr, "install: %s\n", r.error().message().c_str());
    return 1;
  }
  auto attached = faultline::attach_thread();
  if (!attached) {
    std::fprintf(stderr, "attach_thread: %s\n", attached.error().message().c_str());
    return 1;
  }
  // The budget: a CPU-time timer fires on the scheduler tick (about 4 ms), a wall-clock one when asked.
  const std::chrono::microseconds budget(wall ? 2000 : 1000);

  // What each computation must produce, computed here without preemption.
  Result expected[kGreen];
  for (int i = 0; i < kGreen; ++i) {
    g_green[i].seed = 0x9e3779b97f4a7c15ull * static_cast<std::uint64_t>(i + 1);
    g_green[i].steps = 30'000'000 + 5'000'000 * static_cast<std::uint64_t>(i);  // they finish at different times
    expected[i] = compute(g_green[i].seed, g_green[i].steps, nullptr);
  }

  for (int i = 0; i < kGreen; ++i) {
    Green& g = g_green[i];
    g.stack = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (g.stack == MAP_FAILED) {
      std::perror("mmap");
      return 1;
    }
    getcontext(&g.ctx);
    g.ctx.uc_stack.ss_sp = g.stack;
    g.ctx.uc_stack.ss_size = kStackBytes;
    g.ctx.uc_link = &g_scheduler;
    makecontext(&g.ctx, reinterpret_cast<void (*)()>(green_main), 1, i);
  }

  // Round robin. A round gives every unfinished green thread one budget; fairness means each of them ran
  // and moved its counter in every round.
  unsigned rounds = 0, unfair = 0;
  for (;;) {
    bool any = false;
    for (int i = 0; i < kGreen; ++i) {
      Green& g = g_green[i];
      if (g.done) continue;
      any = true;
      const std::uint64_t before = g.progress;
      g_current = i;
      for (int tries = 0;; ++tries) {
        g_spent_in_scheduler = false;
        if (auto r = faultline::preempt::enable(budget, on_budget_spent, nullptr, clock); !r) {
          std::fprintf(stderr, "preempt::enable: %s\n", r.error().message().c_str());
          return 1;
        }
        if (!g_spent_in_scheduler) break;  // armed (a stale expiry is delivered inside enable())
        if (tries == 3) {
          std::fprintf(stderr, "preempt::enable: the budget keeps running out in the scheduler\n");
          return 1;
        }
      }
      swapcontext(&g_scheduler, &g.ctx);  // returns when it is preempted or finishes
      faultline::preempt::disable();
      if (!g.done && g.progress == before) {
        std::printf("green threads: round %u: thread %d ran without progress\n", rounds + 1, i);
        ++unfair;
      }
    }
    if (!any) break;
    ++rounds;
    if (g_inject_failures.load() != 0) {
      std::printf("green threads: inject_call failed: %s\n", g_inject_failure);
      return 1;
    }
  }

  bool exact = true;
  unsigned preemptions = 0;
  for (int i = 0; i < kGreen; ++i) {
    const Green& g = g_green[i];
    preemptions += g.preemptions;
    const bool same = g.result == expected[i];
    std::printf("green threads: thread %d: %" PRIu64 " steps, preempted %u times, result %016" PRIx64 " %.17g %s\n", i,
                g.steps, g.preemptions, g.result.x, g.result.y, same ? "(exact)" : "(DIFFERS)");
    exact = exact && same;
    munmap(g.stack, kStackBytes);
  }
  std::printf("green threads: %d threads, %u rounds, %u preemptions on a %s budget of %lld us\n", kGreen, rounds,
              preemptions, wall ? "wall-clock" : "CPU-time", static_cast<long long>(budget.count()));
  if (preemptions < static_cast<unsigned>(kGreen)) {
    std::printf("green threads: too few preemptions to show anything\n");
    return 1;
  }
  if (unfair != 0 || !exact) return 1;
  std::puts("green threads: fair and exact");
  return 0;
}
