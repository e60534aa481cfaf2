// region/thread_stats_sig.cpp: the per-thread counters' TLS (signal path: initial-exec TLS, constinit,
// nothing lazy).
#include "region/thread_stats.hpp"

#include "os/linux/syscall.hpp"

namespace faultline::region {

namespace {
__attribute__((tls_model("initial-exec"))) constinit thread_local ThreadCounters t_own{};
__attribute__((tls_model("initial-exec"))) constinit thread_local ThreadCounters* t_redirect = nullptr;
}  // namespace

ThreadCounters& thread_counters() noexcept { return t_redirect != nullptr ? *t_redirect : t_own; }

void set_thread_counters(ThreadCounters* c) noexcept { t_redirect = c; }

ThreadStats ThreadCounters::snapshot() const noexcept {
  const auto get = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  ThreadStats s;
  s.tid = tid.load(std::memory_order_relaxed);
  s.faults = get(faults);
  s.fills = get(fills);
  s.pages_filled = get(pages_filled);
  s.readahead_pages = get(readahead_pages);
  s.failures = get(failures);
  s.pages_evicted = get(pages_evicted);
  s.pages_written_back = get(pages_written_back);
  s.fill_ns = get(fill_ns);
  return s;
}

}  // namespace faultline::region

namespace faultline {

ThreadStats this_thread_stats() noexcept {
  ThreadStats s = region::thread_counters().snapshot();
  s.tid = os::raw_gettid();
  return s;
}

}  // namespace faultline
