// tests/region/test_cache.cpp: provider regions over a shmem cache (FillPath::shmem_cache): when they
// get it and why not, that each page is read from the store once (the program's own madvise costs a
// minor fault, not a read), that discard() reads the store again, that the program's writes stay private
// (a forked child, the file) until write-back, and that a failed fill is never a zero or partial page.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "faultline/fault_injection.hpp"
#include "linux_uapi.hpp"  // the newer kernel constants Debian's headers lack
#include "faultline/kernel_mask.hpp"
#include "faultline/region.hpp"
#include "faultline/report.hpp"
#include "support/child.hpp"
#include "support/pages.hpp"

namespace faultline {
namespace {

using namespace test;  // tests/support/

RegionOptions cached_opts(const char* name, FillFn fn, void* data) {
  RegionOptions o = filled_on_uffd(name, Policy::provider, fn, data);
  o.fill_path = FillPath::shmem_cache;
  return o;
}

// Whether the kernel (as the kernel mask shows it) has what the cache needs: minor and missing faults on
// shmem, and for write-back (`wb`) its write protection. Asked of the kernel here, not of faultline, so
// that a faultline that never chose the cache fails these tests rather than skipping them.
bool kernel_has_shmem_cache(bool wb) {
  const long fd = syscall(SYS_userfaultfd, O_CLOEXEC);
  if (fd < 0) return false;
  struct uffdio_api api{};
  api.api = UFFD_API;
  const bool ok = ioctl(static_cast<int>(fd), UFFDIO_API, &api) == 0;
  close(static_cast<int>(fd));
  // Write-back also needs UFFDIO_CONTINUE_MODE_WP, which has no bit: it came with WP_UNPOPULATED (6.4).
  std::uint64_t need = UFFD_FEATURE_MINOR_SHMEM | UFFD_FEATURE_MISSING_SHMEM;
  if (wb) need |= UFFD_FEATURE_WP_HUGETLBFS_SHMEM | UFFD_FEATURE_WP_UNPOPULATED;
  return ok && (api.features & need) == need && !kernel_mask::hidden("MINOR_SHMEM") &&
         !kernel_mask::hidden("MISSING_SHMEM") && !kernel_mask::hidden("userfaultfd") &&
         !(wb && (kernel_mask::hidden("WP_HUGETLBFS_SHMEM") || kernel_mask::hidden("WP_UNPOPULATED")));
}

#define SKIP_WITHOUT_SHMEM_CACHE(wb)                                                          \
  do {                                                                                        \
    FAULTLINE_SKIP_WITHOUT_USERFAULTFD();                                                     \
    if (!kernel_has_shmem_cache(wb)) GTEST_SKIP() << "this kernel has no minor faults on shmem"; \
  } while (0)

// The mapping at `addr` in /proc/self/maps: its path ("" for anonymous memory).
std::string mapping_path(const void* addr) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  const auto a = reinterpret_cast<std::uintptr_t>(addr);
  while (std::getline(maps, line)) {
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx", &lo, &hi) == 2 && a >= lo && a < hi) {
      const auto slash = line.find('/');
      return slash == std::string::npos ? std::string() : line.substr(slash);
    }
  }
  return "?";
}

// A read-only file store over a new file of 16 pages of `c` (the file is unlinked: the store holds it).
FileStore file_of(char c) {
  char path[] = "/tmp/faultline-cache-XXXXXX";
  const int fd = mkstemp(path);
  std::vector<char> bytes(16 * kPage, c);
  if (fd < 0 || write(fd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) _exit(80);
  close(fd);
  auto file = FileStore::open(path);
  unlink(path);
  if (!file.ok()) _exit(81);
  return std::move(file).value();
}

// A provider region on userfaultfd over `store`, the fill path left to faultline.
RegionOptions on_file(const char* name, FileStore& store) {
  RegionOptions o;
  o.name = name;
  o.policy = Policy::provider;
  o.backend = Backend::userfaultfd;
  o.store = &store;
  return o;
}

// A fill that counts the bytes it was asked for (the store's reads).
std::atomic<std::size_t> g_bytes_read{0};
FillStatus counting_fill(const FillRequest& req, void* data) {
  g_bytes_read += req.length;
  return fill_pattern(req, data);
}

TEST(ShmemCache, ProviderRegionsGetItWhereTheKernelHasMinorFaults) {
  SKIP_WITHOUT_SHMEM_CACHE(false);
  ChildResult r = run_child([] {
    // Automatic, a file store: the cache, said in the reason, and the region is a mapping of the memfd.
    FileStore file = file_of('f');
    RegionOptions from_file = on_file("auto", file);
    auto reg = must_reserve(16 * kPage, from_file);
    if (std::string(reg.backend_reason()).find("a shmem cache mapped by minor faults") == std::string::npos) _exit(1);
    if (mapping_path(reg.data()).find("memfd:faultline-cache") == std::string::npos) _exit(2);
    if (static_cast<const volatile char*>(reg.data())[5 * kPage] != 'f') _exit(3);
    // Automatic, a fill function (it writes through dest: faster with copies): anonymous memory.
    auto by_fn = must_reserve(16 * kPage, filled_on_uffd("fn", Policy::provider, fill_pattern, fill_tag(3)));
    if (!mapping_path(by_fn.data()).empty() || !check_pattern(by_fn.data(), 3, 0, 16 * kPage)) _exit(15);
    // Asked for copies: anonymous memory.
    RegionOptions copy = filled_on_uffd("copy", Policy::provider, fill_pattern, fill_tag(3));
    copy.fill_path = FillPath::copy;
    auto plain = must_reserve(16 * kPage, copy);
    if (!mapping_path(plain.data()).empty() || !check_pattern(plain.data(), 3, 0, 16 * kPage)) _exit(4);
    // Executable pages: copies (a memfd may be mapped noexec), saying so.
    RegionOptions code = on_file("code", file);
    code.perms = perm_read | perm_exec;
    auto jit = must_reserve(16 * kPage, code);
    if (std::string(jit.backend_reason()).find("executable pages are copied") == std::string::npos) _exit(11);
    if (!mapping_path(jit.data()).empty() || static_cast<const volatile char*>(jit.data())[kPage] != 'f') _exit(12);
    // A kernel without minor faults on shmem (5.13): copies, saying why; asked for by name, refused.
    if (!kernel_mask::set("5.13").ok()) _exit(5);
    auto old = must_reserve(16 * kPage, on_file("old", file));
    std::printf("5.13: %s\n", old.backend_reason());
    if (std::string(old.backend_reason()).find("no shmem cache: this kernel's userfaultfd lacks MINOR_SHMEM") ==
        std::string::npos) {
      _exit(6);
    }
    if (!mapping_path(old.data()).empty() || static_cast<const volatile char*>(old.data())[kPage] != 'f') _exit(7);
    auto refused = reserve_region(16 * kPage, cached_opts("by-name", fill_pattern, fill_tag(3)));
    if (refused.ok() || refused.error().code() != Errc::unsupported ||
        refused.error().message().find("MINOR_SHMEM") == std::string::npos) {
      _exit(8);
    }
    // Write-back on 5.18: minor faults, but no write protection of shmem.
    if (!kernel_mask::set("5.18").ok()) _exit(9);
    std::vector<char> backing(16 * kPage, 'b');
    VectorStore store(backing);
    RegionOptions wb = filled_on_uffd("wb", Policy::provider, nullptr);
    wb.fill = nullptr;
    wb.store = &store;
    wb.write_back = true;
    wb.fill_path = FillPath::shmem_cache;
    auto c = explain_backend(wb);
    if (c.ok() || c.error().message().find("lacks WP_HUGETLBFS_SHMEM") == std::string::npos) _exit(10);
    // Write-back on 6.3: write-protection of shmem, but UFFDIO_CONTINUE cannot map write-protected.
    if (!kernel_mask::set("6.3").ok()) _exit(13);
    c = explain_backend(wb);
    if (c.ok() || c.error().message().find("UFFDIO_CONTINUE_MODE_WP") == std::string::npos) _exit(14);
    (void)kernel_mask::set("");
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// When the cache cannot be set up (no memfd to be had), FillPath::automatic copies, saying why; asked
// for by name, the region is refused with the cause.
TEST(ShmemCache, WithoutAMemfdPagesAreCopied) {
  SKIP_WITHOUT_SHMEM_CACHE(false);
  ChildResult r = run_child([] {
    FileStore file = file_of('m');
    if (!fault_injection::arm({{fault_injection::Op::memfd_create, 1, 0, EMFILE}}).ok()) _exit(90);
    auto reg = must_reserve(16 * kPage, on_file("no-memfd", file));
    const std::string reason = reg.backend_reason();
    auto refused = reserve_region(16 * kPage, cached_opts("by-name", fill_pattern, fill_tag(9)));
    fault_injection::disarm();
    std::printf("%s\n", reason.c_str());
    if (reason.find("pages copied, no shmem cache: memfd_create") == std::string::npos) _exit(1);
    if (!mapping_path(reg.data()).empty() || static_cast<const volatile char*>(reg.data())[kPage] != 'm') _exit(2);
    if (refused.ok() || refused.error().message().find("memfd_create") == std::string::npos) _exit(3);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// A forked child never maps the parent's cache pages (the parent may be writing or dropping them): a
// page the cache holds is filled in the child from the store, like a missing one.
TEST(ShmemCache, AForkedChildFillsFromTheStoreNotTheParentsCache) {
  SKIP_WITHOUT_SHMEM_CACHE(false);
  ChildResult r = run_child([] {
    auto reg = must_reserve(16 * kPage, cached_opts("inherited", counting_fill, fill_tag(10)));
    auto* p = static_cast<char*>(reg.data());
    if (!check_pattern(p, 10, 5 * kPage, kPage)) _exit(1);
    if (madvise(p + 5 * kPage, kPage, MADV_DONTNEED) != 0) _exit(2);  // in the cache, not in the region
    std::fflush(nullptr);
    const int status = fork_and_wait([&] {
      const std::size_t before = g_bytes_read.load();
      if (!check_pattern(p, 10, 5 * kPage, kPage)) _exit(1);
      _exit(g_bytes_read.load() > before ? 0 : 2);  // 2: mapped from the parent's cache
    });
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::printf("child: %d\n", status);
      _exit(3);
    }
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// Each page is read from the store once: after the program drops the region's pages itself (its own
// madvise, which the cache does not see), they come back from the cache by minor faults.
TEST(ShmemCache, EachPageIsReadFromTheStoreOnce) {
  SKIP_WITHOUT_SHMEM_CACHE(false);
  ChildResult r = run_child([] {
    constexpr std::size_t kPages = 256;
    auto reg = must_reserve(kPages * kPage, cached_opts("once", counting_fill, fill_tag(4)));
    for (std::size_t i = 0; i < kPages; i += 3) {  // not quite sequential
      if (!check_pattern(reg.data(), 4, i * kPage, kPage)) _exit(1);
    }
    if (!check_pattern(reg.data(), 4, 0, kPages * kPage)) _exit(2);
    const std::size_t first = g_bytes_read.load();
    if (first != kPages * kPage) {
      std::printf("read %zu bytes for %zu\n", first, kPages * kPage);
      _exit(3);
    }
    if (madvise(reg.data(), kPages * kPage, MADV_DONTNEED) != 0) _exit(4);
    if (!check_pattern(reg.data(), 4, 0, kPages * kPage)) _exit(6);
    if (g_bytes_read.load() != first) {
      std::printf("read %zu more bytes\n", g_bytes_read.load() - first);
      _exit(7);
    }
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// discard() drops the cache's copies too: the pages are read from the store again, with what it holds
// now.
TEST(ShmemCache, DiscardReadsTheStoreAgain) {
  SKIP_WITHOUT_SHMEM_CACHE(false);
  ChildResult r = run_child([] {
    static std::atomic<std::uintptr_t> tag{5};
    auto reg = must_reserve(64 * kPage, cached_opts("again", [](const FillRequest& req, void*) {
      return fill_pattern(req, fill_tag(tag.load()));
    }, nullptr));
    if (!check_pattern(reg.data(), 5, 0, 64 * kPage)) _exit(1);
    tag = 6;  // the store changed
    if (!reg.discard(8, 8).ok()) _exit(2);
    if (!check_pattern(reg.data(), 6, 8 * kPage, 8 * kPage)) _exit(3);  // read again
    if (!check_pattern(reg.data(), 5, 0, 8 * kPage) || !check_pattern(reg.data(), 5, 16 * kPage, 48 * kPage)) _exit(4);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// The program's writes are its own: a forked child sees the parent's and not the other way round, and
// the store gets them only by write-back; after an eviction they come back from the store.
TEST(ShmemCache, WritesArePrivateUntilWrittenBack) {
  SKIP_WITHOUT_SHMEM_CACHE(true);
  ChildResult r = run_child([] {
    std::vector<char> backing(32 * kPage, 'a');
    VectorStore store(backing);
    RegionOptions o = cached_opts("private", nullptr, nullptr);
    o.fill = nullptr;
    o.store = &store;
    o.write_back = true;
    auto reg = must_reserve(32 * kPage, o);
    auto* p = static_cast<volatile char*>(reg.data());
    if (p[0] != 'a') _exit(1);
    p[3 * kPage] = 'P';
    const int status = fork_and_wait([&] {
      if (p[3 * kPage] != 'P' || p[20 * kPage] != 'a') _exit(1);
      p[4 * kPage] = 'C';  // the child's own
      _exit(p[4 * kPage] == 'C' ? 0 : 2);
    });
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) _exit(2);
    if (p[4 * kPage] != 'a') _exit(3);        // not the child's write
    if (backing[3 * kPage] != 'a') _exit(4);  // not stored yet
    auto n = reg.flush();
    if (!n.ok() || *n != 1 || backing[3 * kPage] != 'P') _exit(5);
    p[5 * kPage] = 'Q';
    auto e = reg.evict(0, 8);
    if (!e.ok() || *e != 1) _exit(6);
    if (resident_pages(reg.data(), 8) != 0) _exit(7);
    if (p[3 * kPage] != 'P' || p[5 * kPage] != 'Q' || p[6 * kPage] != 'a') _exit(8);  // from the store
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// A store that fails the faulting page's run: SIGBUS with its reason, never a zero page or what the store
// wrote before it failed.
TEST(ShmemCache, AFailedFillEndsInSigbusWithTheStoresReason) {
  SKIP_WITHOUT_SHMEM_CACHE(false);
  ChildResult r = run_child([] {
    (void)report::enable();
    static std::atomic<std::size_t> bad_page{40};
    RegionOptions o = cached_opts("failing", [](const FillRequest& req, void*) {
      (void)fill_pattern(req, fill_tag(7));  // writes the whole run, then maybe fails
      const std::size_t first = req.offset / kPage, last = (req.offset + req.length) / kPage;
      if (bad_page.load() >= first && bad_page.load() < last) return FillStatus{EIO, "sector 40 unreadable"};
      return FillStatus{};
    }, nullptr);
    o.readahead_max = 1;
    auto reg = must_reserve(64 * kPage, o);
    if (!check_pattern(reg.data(), 7, 0, 40 * kPage)) _exit(1);  // the windows before the bad page
    std::printf("before the bad page: right\n");
    std::fflush(stdout);
    (void)static_cast<volatile char*>(reg.data())[40 * kPage];
    _exit(2);
  });
  EXPECT_TRUE(r.signaled() && r.signal() == SIGBUS) << r;
  EXPECT_NE(r.output.find("before the bad page: right"), std::string::npos) << r;
  EXPECT_NE(r.output.find("sector 40 unreadable"), std::string::npos) << r;
  EXPECT_NE(r.output.find("failing"), std::string::npos) << r;  // the report names the region
}

// A store that fails a run after writing part of it: what it wrote is dropped from the cache, so that the
// pages are read again when next touched, never mapped with what the failed fill left. The window has to
// start at a page the cache holds (filled, then dropped by the program's own madvise), so that the failed
// run is not the faulting page's: that access succeeds, and the failure fails nobody.
TEST(ShmemCache, WhatAFailedFillWroteIsNeverMapped) {
  SKIP_WITHOUT_SHMEM_CACHE(false);
  ChildResult r = run_child([] {
    static std::atomic<bool> failing{false};
    RegionOptions o = cached_opts("half-written", [](const FillRequest& req, void*) {
      const std::size_t first = req.offset / kPage, last = (req.offset + req.length) / kPage;
      if (failing.load() && first <= 20 && 20 < last) {
        std::memset(req.dest, 0xEE, req.length);  // written, then failed
        return FillStatus{EIO, "torn read"};
      }
      return fill_pattern(req, fill_tag(8));
    }, nullptr);
    o.readahead_max = 8;
    o.async_readahead = false;
    auto reg = must_reserve(64 * kPage, o);
    auto* p = static_cast<const volatile char*>(reg.data());
    (void)p[17 * kPage];  // cached
    if (madvise(const_cast<char*>(p) + 17 * kPage, kPage, MADV_DONTNEED) != 0) _exit(1);
    // Windows of 1, 2, 4 pages: 10, 11-12, 13-16; then 17-24 starts at the cached page 17.
    for (std::size_t page : {10, 11, 13}) (void)p[page * kPage];
    failing = true;
    if (!check_pattern(reg.data(), 8, 17 * kPage, kPage)) _exit(2);  // mapped from the cache
    failing = false;
    if (!check_pattern(reg.data(), 8, 18 * kPage, 7 * kPage)) _exit(3);  // read again, not 0xEE
    if (reg.stats().failures != 0) _exit(4);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// The file store fills the cache by splicing from its file (no page fault on the cache's view), and
// where splice fails, by pread: the bytes are the file's either way, to its end and zeros after it.
TEST(ShmemCache, TheFileStoreSplicesIntoItAndFallsBackToPread) {
  SKIP_WITHOUT_SHMEM_CACHE(false);
  for (const bool splice_fails : {false, true}) {
    ChildResult r = run_child([splice_fails] {
      char path[] = "/tmp/faultline-cache-XXXXXX";
      const int fd = mkstemp(path);
      if (fd < 0) _exit(90);
      std::vector<unsigned char> bytes(40 * kPage + 100);  // the last page is partly past the end
      for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<unsigned char>(i * 7 + i / kPage);
      if (write(fd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) _exit(91);
      auto store = FileStore::open(path);
      unlink(path);
      if (!store.ok()) _exit(92);
      RegionOptions o;
      o.name = "spliced";
      o.policy = Policy::provider;
      o.store = &store.value();
      o.fill_path = FillPath::shmem_cache;
      auto reg = must_reserve(64 * kPage, o);
      if (splice_fails) {
        if (!fault_injection::arm({{fault_injection::Op::splice, 1, 0, EINVAL}}).ok()) _exit(93);
      } else {
        fault_injection::count_only();
      }
      const auto* p = static_cast<const volatile unsigned char*>(reg.data());
      for (std::size_t i = 0; i < 64 * kPage; i += 61) {
        if (p[i] != (i < bytes.size() ? bytes[i] : 0)) {
          std::printf("byte %zu\n", i);
          _exit(1);
        }
      }
      const std::uint64_t splices = fault_injection::calls(fault_injection::Op::splice);
      fault_injection::disarm();
      if (splices == 0) _exit(2);  // the cache was not filled by splice at all
    });
    EXPECT_TRUE(r.exited() && r.exit_code() == 0) << (splice_fails ? "splice failing: " : "") << r;
  }
}

}  // namespace
}  // namespace faultline
