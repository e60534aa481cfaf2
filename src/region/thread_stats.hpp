// region/thread_stats.hpp: each thread's share of the regions' work (faultline::ThreadStats), kept in
// initial-exec TLS by the thread that does the work. Signal path: every function here is
// async-signal-safe (plain loads and stores of relaxed atomics, no allocation, no lock).
#pragma once

#include <atomic>
#include <cstdint>

#include "faultline/region.hpp"

namespace faultline::region {

// One thread's counters. Written only by their thread (a relaxed load and store, not a locked add: a
// fault in the middle of an update is the only way to lose one, and the update touches nothing that can
// fault); read by any thread.
struct ThreadCounters {
  std::atomic<long> tid{0};
  std::atomic<std::uint64_t> faults{0}, fills{0}, pages_filled{0}, readahead_pages{0}, failures{0}, pages_evicted{0},
      pages_written_back{0}, fill_ns{0};
  static void bump(std::atomic<std::uint64_t>& c, std::uint64_t n) noexcept {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  ThreadStats snapshot() const noexcept;
};

// The calling thread's counters: its own TLS block, or the block set_thread_counters() gave it.
ThreadCounters& thread_counters() noexcept;
// Makes the calling thread count into `c` (a block that outlives the thread: faultline's handler threads
// use blocks the process keeps, so that they can be listed). Null: back to the thread's own block.
void set_thread_counters(ThreadCounters* c) noexcept;

}  // namespace faultline::region
