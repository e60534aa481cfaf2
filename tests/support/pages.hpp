// tests/support/pages.hpp: what the region tests share: the page size, a content pattern that names its
// region and offset, fill functions that write it or fail, and the calling thread's id.
#pragma once

#include <sys/mman.h>
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
#include "faultline/store.hpp"

namespace faultline::test {

inline const std::size_t kPage = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));

inline long tid() { return syscall(SYS_gettid); }

// The word a fill writes at byte offset `off` of a region whose fill data is `tag`.
inline std::uint64_t pattern(std::uint64_t tag, std::size_t off) { return (tag << 40) ^ (off / 8) ^ 0x5a5a; }

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

// reserve_region(), or, when it fails, the message on stderr and _exit(90): for run_child() bodies.
inline Region must_reserve(std::size_t size, const RegionOptions& o) {
  auto r = reserve_region(size, o);
  if (!r) {
    std::fprintf(stderr, "reserve_region '%s': %s\n", o.name.c_str(), r.error().message().c_str());
    _exit(90);
  }
  return std::move(r).value();
}

// Options for a region pinned to the signal backend (the suites that test what it alone does).
inline RegionOptions on_signals(const char* name, Policy p, unsigned perms = perm_read | perm_write) {
  RegionOptions o;
  o.backend = Backend::signals;
  o.name = name;
  o.policy = p;
  o.perms = perms;
  return o;
}
// The same for a provider or pager region with a fill function.
inline RegionOptions filled_on_signals(const char* name, Policy p, FillFn fn, void* data = nullptr) {
  RegionOptions o = on_signals(name, p);
  o.fill = fn;
  o.fill_data = data;
  return o;
}

}  // namespace faultline::test
