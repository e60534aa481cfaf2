// tests/support/pages.hpp: what the region tests share: the page size, a content pattern that names its
// region and offset, fill functions that write it or fail (they run where faultline fills: in signal
// context on the signal backend, so they stay async-signal-safe), the calling thread's id, region options
// pinned to one backend, and starting regions, pagers and pager processes in run_child() bodies.
#pragma once

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <vector>
#include <cerrno>
#include <cstddef>
#include <cstdint>

#include "faultline/region.hpp"
#include "faultline/remote_pager.hpp"
#include "faultline/store.hpp"

// In a gtest body: skips the test, saying why, when this process cannot use userfaultfd (the kernel, a
// seccomp filter, vm.unprivileged_userfaultfd, or FAULTLINE_KERNEL=none).
#define FAULTLINE_SKIP_WITHOUT_USERFAULTFD()                                                      \
  do {                                                                                            \
    if (auto u_ = ::faultline::userfaultfd_available(); !u_.ok()) {                               \
      GTEST_SKIP() << "needs userfaultfd: " << u_.error().message();                              \
    }                                                                                             \
  } while (0)

namespace faultline::test {

inline const std::size_t kPage = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));

inline long tid() { return syscall(SYS_gettid); }

// The word a fill writes at byte offset `off` of a region whose fill data is `tag`.
inline std::uint64_t pattern(std::uint64_t tag, std::size_t off) { return (tag << 40) ^ (off / 8) ^ 0x5a5a; }

// The fill data that makes fill_pattern write pattern(tag, ...).
inline void* fill_tag(std::uintptr_t tag) { return reinterpret_cast<void*>(tag); }

// Fills calls so far (any test's fill_pattern).
inline std::atomic<int> g_pattern_fills{0};

// A fill function writing pattern(tag, ...) with tag = its data pointer.
inline FillStatus fill_pattern(const FillRequest& req, void* data) {
  g_pattern_fills++;
  const auto tag = reinterpret_cast<std::uintptr_t>(data);
  auto* w = reinterpret_cast<std::uint64_t*>(req.dest);
  for (std::size_t i = 0; i < req.length / 8; ++i) w[i] = pattern(tag, req.offset + i * 8);
  return {};
}

// A fill function that always fails with EIO.
inline FillStatus fill_fails(const FillRequest&, void*) { return FillStatus{EIO, "disk on fire"}; }

// True when [off, off + len) of `base` holds pattern(tag, ...).
inline bool check_pattern(const void* base, std::uint64_t tag, std::size_t off, std::size_t len) {
  auto* w = static_cast<const volatile std::uint64_t*>(base);
  for (std::size_t o = off; o < off + len; o += 8) {
    if (w[o / 8] != pattern(tag, o)) return false;
  }
  return true;
}

// A writable store over a buffer of the test's (memcpy both ways: async-signal-safe).
class VectorStore final : public Store {
 public:
  explicit VectorStore(std::vector<char>& v) : v_(v) {}
  FillStatus fill(const FillRequest& req) override {
    std::memcpy(req.dest, v_.data() + req.offset, req.length);
    return {};
  }
  FillStatus write_back(const WriteBackRequest* runs, std::size_t n, std::size_t* stored) override {
    for (std::size_t i = 0; i < n; ++i) std::memcpy(v_.data() + runs[i].offset, runs[i].src, runs[i].length);
    *stored = n;
    return {};
  }
  bool writable() const noexcept override { return true; }
  bool async_signal_safe() const noexcept override { return true; }

 private:
  std::vector<char>& v_;
};

// How many of the `pages` pages at `base` are resident (mincore): measured by the kernel, not by the code
// under test.
inline std::size_t resident_pages(const void* base, std::size_t pages) {
  std::vector<unsigned char> vec(pages);
  if (mincore(const_cast<void*>(base), pages * kPage, vec.data()) != 0) return ~std::size_t{0};
  std::size_t n = 0;
  for (unsigned char v : vec) n += v & 1;
  return n;
}

// reserve_region(), or, when it fails, the message on stderr and _exit(fail_code): for run_child() bodies.
inline Region must_reserve(std::size_t size, const RegionOptions& o, int fail_code = 90) {
  auto r = reserve_region(size, o);
  if (!r) {
    std::fprintf(stderr, "reserve_region '%s': %s\n", o.name.c_str(), r.error().message().c_str());
    _exit(fail_code);
  }
  return std::move(r).value();
}

// Pager::start(), or _exit(90): for run_child() bodies.
inline Pager must_start_pager(const PagerOptions& opts = {}) {
  auto p = Pager::start(opts);
  if (!p) _exit(90);
  return std::move(p).value();
}

// A pager in another process: forks one that receives the region sent through a socket pair and serves
// it with fill_pattern (tag `tag`) until it is killed. Returns its pid; *socket is this process's end,
// for remote_paged(). _exit(90) without a socket pair: for run_child() bodies.
inline pid_t fork_remote_pager(std::uintptr_t tag, int* socket) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) _exit(90);
  const pid_t pager = fork();
  if (pager == 0) {  // the pager process
    close(sv[0]);
    auto region = remote_pager::receive(sv[1]);
    if (!region.ok()) _exit(1);
    (void)region->serve(fill_pattern, fill_tag(tag));
    _exit(0);
  }
  close(sv[1]);
  *socket = sv[0];
  return pager;
}

// Options for a pager region served by the pager process at the other end of `socket`.
inline RegionOptions remote_paged(const char* name, int socket) {
  RegionOptions o;
  o.name = name;
  o.policy = Policy::pager;
  o.remote_pager_socket = socket;
  return o;
}

// Options for a region pinned to one backend (the suites that test what it alone does).
inline RegionOptions on_backend(Backend b, const char* name, Policy p, unsigned perms = perm_read | perm_write) {
  RegionOptions o;
  o.backend = b;
  o.name = name;
  o.policy = p;
  o.perms = perms;
  return o;
}
inline RegionOptions on_signals(const char* name, Policy p, unsigned perms = perm_read | perm_write) {
  return on_backend(Backend::signals, name, p, perms);
}
inline RegionOptions on_uffd(const char* name, Policy p = Policy::zero_fill) {
  return on_backend(Backend::userfaultfd, name, p);
}

// `o` with a fill function and its data (provider and pager regions).
inline RegionOptions with_fill(RegionOptions o, FillFn fn, void* data = nullptr) {
  o.fill = fn;
  o.fill_data = data;
  return o;
}
// `o` served by `pager` (pager regions).
inline RegionOptions with_pager(RegionOptions o, const Pager& pager) {
  o.pager = pager;
  return o;
}
inline RegionOptions filled_on_signals(const char* name, Policy p, FillFn fn, void* data = nullptr) {
  return with_fill(on_signals(name, p), fn, data);
}
inline RegionOptions filled_on_uffd(const char* name, Policy p, FillFn fn, void* data = nullptr) {
  return with_fill(on_uffd(name, p), fn, data);
}

}  // namespace faultline::test
