// faultline/pager.hpp: pager threads, which fill the pages of pager regions as ordinary code.
//
//   auto pager = faultline::Pager::start({.name = "store-pager", .threads = 2}).value();
//   faultline::RegionOptions o;
//   o.policy = faultline::Policy::pager;
//   o.fill = load_page;  o.fill_data = &objects;   // or o.store = &my_store
//   o.pager = pager;
//   auto heap = faultline::reserve_region(1 << 30, o).value();
//
// A faulting thread hands its fault to the region's pager and waits (on a futex; the signal backend)
// or sleeps in the kernel (userfaultfd) until a pager thread has filled the pages. The fill runs as
// ordinary code: it may allocate, lock, read files or talk to a server. A pager that does not answer
// within the region's fill_timeout makes the access end in SIGBUS with the cause in the report.
//
// A Pager is a handle (copies share the pager); its threads stop when the last handle and the last
// region using it are gone. A pager's own threads must not touch unfilled pages of the regions they
// serve: such a fault fails with SIGBUS (EDEADLK) instead of deadlocking.
//
// Thread-safety: every call is thread-safe. None is async-signal-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "faultline/result.hpp"

namespace faultline {

class Pager;
namespace detail {
struct PagerImpl;
const std::shared_ptr<PagerImpl>& impl_of(const Pager& p) noexcept;
}  // namespace detail

struct PagerOptions {
  std::string name = "pager";  // thread name (first 15 bytes) and reports
  unsigned threads = 1;        // 1..64 threads serving requests
};

// Counters of a pager (relaxed snapshots).
struct PagerStats {
  std::uint64_t requests = 0;   // fills asked for
  std::uint64_t failed = 0;     // fills that reported an error (the faulting thread got SIGBUS)
  std::uint64_t abandoned = 0;  // requests whose faulting thread stopped waiting (fill_timeout)
};

class Pager {
 public:
  Pager() = default;
  // Starts the threads. Errc::invalid_argument for 0 or more than 64 threads; Errc::system_error when a
  // thread cannot be created (nothing is left running).
  static Result<Pager> start(const PagerOptions& opts = {});

  bool valid() const noexcept { return impl_ != nullptr; }
  PagerStats stats() const noexcept;

 private:
  friend const std::shared_ptr<detail::PagerImpl>& detail::impl_of(const Pager& p) noexcept;
  std::shared_ptr<detail::PagerImpl> impl_;
};

}  // namespace faultline
