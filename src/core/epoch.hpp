// core/epoch.hpp: epoch-pair reclamation for data that signal handlers read without locks.
//
// Readers (any thread, including signal handlers, re-entrantly) bracket their use of shared data with
// enter()/exit(): two atomic read-modify-writes, no locks, no allocation, async-signal-safe. A writer
// (serialised by its own mutex, never in signal context) publishes a new version, then calls
// synchronize(), which flips the epoch and waits until every reader that entered under the old epoch has
// left; after that nothing can still hold the old version and it may be freed.
//
// Why this scheme: faults are rare events that cost microseconds, so two atomic operations per fault
// cost nothing, and unlike hazard pointers a reader protects any number of objects at once (the table
// array and every region in it). Its limit: a reader that never leaves (a handler that longjmps out
// without calling the matching exit) blocks writers; synchronize() therefore has a bounded variant.
#pragma once

#include <atomic>
#include <cstdint>

namespace faultline::core {

class EpochDomain {
 public:
  // Returns the side to pass to exit(). Async-signal-safe, lock-free.
  unsigned enter() noexcept {
    for (;;) {
      std::uint64_t e = epoch_.load(std::memory_order_seq_cst);
      unsigned side = static_cast<unsigned>(e & 1);
      active_[side].fetch_add(1, std::memory_order_seq_cst);
      if (epoch_.load(std::memory_order_seq_cst) == e) return side;
      active_[side].fetch_sub(1, std::memory_order_seq_cst);  // raced with a flip: retry on the new side
    }
  }
  void exit(unsigned side) noexcept { active_[side].fetch_sub(1, std::memory_order_release); }

  // Writer side: waits until readers of the previous epoch are gone. `spin` is called between checks
  // (it may yield or sleep); returns false if `spin` returns false (the caller's bound ran out).
  template <class Spin>
  bool synchronize(Spin&& spin) {
    std::uint64_t e = epoch_.fetch_add(1, std::memory_order_seq_cst);
    unsigned old_side = static_cast<unsigned>(e & 1);
    while (active_[old_side].load(std::memory_order_acquire) != 0) {
      if (!spin()) return false;
    }
    return true;
  }

  // In a forked child: the readers the parent's other threads were counted as do not exist. Sets the
  // counts to the calling thread's own (`side` -1: it holds none). Call with no other thread running.
  void reset_after_fork(int side) noexcept {
    active_[0].store(side == 0 ? 1 : 0, std::memory_order_relaxed);
    active_[1].store(side == 1 ? 1 : 0, std::memory_order_relaxed);
  }

  std::int64_t readers() const noexcept {
    return active_[0].load(std::memory_order_relaxed) + active_[1].load(std::memory_order_relaxed);
  }

 private:
  std::atomic<std::uint64_t> epoch_{0};
  std::atomic<std::int64_t> active_[2] = {0, 0};
};

// RAII reader guard.
class EpochReader {
 public:
  explicit EpochReader(EpochDomain& d) noexcept : d_(d), side_(d.enter()) {}
  ~EpochReader() { d_.exit(side_); }
  EpochReader(const EpochReader&) = delete;
  EpochReader& operator=(const EpochReader&) = delete;

 private:
  EpochDomain& d_;
  unsigned side_;
};

}  // namespace faultline::core
