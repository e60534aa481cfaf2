// tools/faultline/bench/section_threads.cpp: stop-the-world + resume against Boehm GC's
// GC_stop_world_external/GC_start_world_external (the same threads registered with both), and
// preemption: enable/disable cost against arming and disarming a timer, lateness of a wall-clock budget.
//
// Boehm GC is loaded at run time (libgc.so.1) so that its absence is a note, not a build failure.
#include <dlfcn.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "bench/sections.hpp"
#include "faultline/preempt.hpp"
#include "faultline/thread.hpp"
#include "faultline/world.hpp"

namespace faultline::bench {

namespace {

struct GcStackBase {
  void* mem_base;
};

struct Boehm {
  void* lib = nullptr;
  void (*init)() = nullptr;
  void (*allow_register_threads)() = nullptr;
  int (*get_stack_base)(GcStackBase*) = nullptr;
  int (*register_my_thread)(const GcStackBase*) = nullptr;
  int (*unregister_my_thread)() = nullptr;
  void (*stop_world)() = nullptr;
  void (*start_world)() = nullptr;
  void* (*do_blocking)(void* (*)(void*), void*) = nullptr;
  std::string error;

  bool load() {
    lib = dlopen("libgc.so.1", RTLD_NOW | RTLD_GLOBAL);
    if (lib == nullptr) {
      error = std::string("libgc.so.1 not found (install libgc1): ") + dlerror();
      return false;
    }
    auto sym = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, name));
      if (fn == nullptr) error = std::string("libgc.so.1 lacks ") + name;
      return fn != nullptr;
    };
    return sym(init, "GC_init") && sym(allow_register_threads, "GC_allow_register_threads") &&
           sym(get_stack_base, "GC_get_stack_base") && sym(register_my_thread, "GC_register_my_thread") &&
           sym(unregister_my_thread, "GC_unregister_my_thread") && sym(stop_world, "GC_stop_world_external") &&
           sym(start_world, "GC_start_world_external") && sym(do_blocking, "GC_do_blocking");
  }
};

Boehm g_gc;
int g_pipe[2] = {-1, -1};

enum class Kind { spinning, blocked, blocking_region };

// Threads attached to faultline and registered with Boehm GC, all of one kind.
class Workers {
 public:
  Workers(unsigned n, Kind kind) : kind_(kind) {
    for (unsigned i = 0; i < n; ++i) threads_.emplace_back([this] { body(); });
    while (ready_.load() < n) std::this_thread::yield();
  }
  ~Workers() {
    quit_ = true;
    for (std::size_t i = 0; i < threads_.size(); ++i) {
      if (kind_ != Kind::spinning && write(g_pipe[1], "q", 1) != 1) die("write to the workers' pipe failed");
    }
    for (auto& t : threads_) t.join();
  }

 private:
  static void* blocked_read(void*) {
    char c;
    return reinterpret_cast<void*>(read(g_pipe[0], &c, 1));
  }
  void body() {
    auto a = attach_thread();
    if (!a) die("attach_thread: " + a.error().message());
    GcStackBase sb{};
    g_gc.get_stack_base(&sb);
    g_gc.register_my_thread(&sb);
    ready_++;
    if (kind_ == Kind::spinning) {
      while (!quit_.load(std::memory_order_relaxed)) counter_.fetch_add(1, std::memory_order_relaxed);
    } else if (kind_ == Kind::blocked) {
      blocked_read(nullptr);
    } else {
      // A faultline blocking region inside a Boehm blocking call: each library skips the thread.
      g_gc.do_blocking(
          [](void*) -> void* {
            BlockingRegion region;
            return blocked_read(nullptr);
          },
          nullptr);
    }
    g_gc.unregister_my_thread();
  }
  Kind kind_;
  std::atomic<bool> quit_{false};
  std::atomic<unsigned> ready_{0};
  std::atomic<std::uint64_t> counter_{0};
  std::vector<std::thread> threads_;
};

double boehm_sample(unsigned ops) {
  const double t0 = now_ns();
  for (unsigned i = 0; i < ops; ++i) {
    g_gc.stop_world();
    g_gc.start_world();
  }
  return (now_ns() - t0) / ops;
}

double faultline_sample(unsigned ops) {
  const double t0 = now_ns();
  for (unsigned i = 0; i < ops; ++i) {
    if (auto r = world::stop(); !r) die("world::stop: " + r.error().message());
    if (auto r = world::resume(); !r) die("world::resume: " + r.error().message());
  }
  return (now_ns() - t0) / ops;
}

void stop_world_rows(Bench& b) {
  const unsigned many = b.options().threads != 0 ? b.options().threads : 64;
  struct Case {
    unsigned threads;
    Kind kind;
    const char* label;
    bool target;
  };
  const Case cases[] = {
      {1, Kind::spinning, "spinning", false},
      {8, Kind::spinning, "spinning", true},
      {many, Kind::blocked, "blocked in read()", true},
      {many, Kind::blocking_region, "in blocking regions", false},
  };
  if (!g_gc.load()) {
    for (const Case& c : cases) {
      b.unavailable("threads", "stop+resume, " + std::to_string(c.threads) + " threads " + c.label,
                    "Boehm GC stop/start_world_external", g_gc.error);
    }
    return;
  }
  g_gc.init();
  g_gc.allow_register_threads();
  if (pipe(g_pipe) != 0) die("pipe failed");
  for (const Case& c : cases) {
    Workers w(c.threads, c.kind);
    const unsigned ops = c.kind == Kind::spinning && c.threads > 2 ? (b.options().quick ? 2 : 8)
                                                                   : (b.options().quick ? 20 : 50);
    std::optional<Target> t;
    if (c.target) t = Target{Target::Kind::ratio_at_most, 0.5, "<= 0.5x", "threads"};
    b.compare("threads", "stop+resume, " + std::to_string(c.threads) + " thread" + (c.threads > 1 ? "s " : " ") + c.label,
              "Boehm GC stop/start_world_external", [&] { return boehm_sample(ops); },
              [&] { return faultline_sample(ops); }, t);
  }
}

// --- preemption ------------------------------------------------------------------------------------

std::atomic<std::int64_t> g_fired_ns{0};

std::int64_t mono_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void record_fire(FaultContext&, void*) { g_fired_ns.store(mono_ns(), std::memory_order_release); }

void preempt_rows(Bench& b) {
  auto a = attach_thread();
  if (!a) die("attach_thread: " + a.error().message());
  const unsigned ops = b.options().quick ? 2000 : 20000;
  // Arming and disarming a per-thread timer by hand: two timer_settime calls.
  timer_t raw{};
  sigevent ev{};
  ev.sigev_notify = SIGEV_NONE;
  if (timer_create(CLOCK_MONOTONIC, &ev, &raw) != 0) die("timer_create failed");
  const Sampler settime_pair = [&] {
    itimerspec on{}, off{};
    on.it_value.tv_sec = 100;
    const double t0 = now_ns();
    for (unsigned i = 0; i < ops; ++i) {
      timer_settime(raw, 0, &on, nullptr);
      timer_settime(raw, 0, &off, nullptr);
    }
    return (now_ns() - t0) / ops;
  };
  if (auto r = preempt::enable(std::chrono::seconds(100), record_fire); !r) die("preempt::enable: " + r.error().message());
  preempt::disable();
  b.compare("threads", "preemption enable + disable", "timer_settime arm + disarm", settime_pair, [&] {
    const double t0 = now_ns();
    for (unsigned i = 0; i < ops; ++i) {
      (void)preempt::enable(std::chrono::seconds(100), record_fire);
      preempt::disable();
    }
    return (now_ns() - t0) / ops;
  });
  timer_delete(raw);

  // Lateness: the time from enable() to the handler, against the budget asked for.
  const auto budget = std::chrono::microseconds(200);
  const unsigned shots = b.options().quick ? 10 : 40;
  const auto lateness_sampler = [&](preempt::Clock clock, std::chrono::nanoseconds want) -> Sampler {
    return [&, clock, want] {
      std::vector<double> late;
      for (unsigned i = 0; i < shots; ++i) {
        g_fired_ns.store(0);
        const std::int64_t t0 = mono_ns();
        if (auto r = preempt::enable(want, record_fire, nullptr, clock); !r) die("preempt::enable: " + r.error().message());
        while (g_fired_ns.load(std::memory_order_acquire) == 0) {
        }
        late.push_back(static_cast<double>(g_fired_ns.load() - t0));
      }
      return quantile(late, 0.5);
    };
  };
  const Sampler requested = [budget] { return static_cast<double>(std::chrono::nanoseconds(budget).count()); };
  b.compare("threads", "preemption, wall-clock budget 200 us: time to the handler", "the budget asked for", requested,
            lateness_sampler(preempt::Clock::wall, budget),
            Target{Target::Kind::ns_at_most, 300'000, "<= 100 us late", "threads"});
  const auto cpu_budget = std::chrono::milliseconds(1);
  b.compare("threads", "preemption, CPU-time budget 1 ms: time to the handler", "the budget asked for",
            [cpu_budget] { return static_cast<double>(std::chrono::nanoseconds(cpu_budget).count()); },
            lateness_sampler(preempt::Clock::cpu_time, cpu_budget))
      .note = "CPU-time timers fire on the scheduler tick";
}

}  // namespace

void section_threads(Bench& b) {
  if (!b.wants("threads")) return;
  stop_world_rows(b);
  preempt_rows(b);
}

}  // namespace faultline::bench
