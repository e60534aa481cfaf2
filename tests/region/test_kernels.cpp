// tests/region/test_kernels.cpp: the kernel-feature mask (faultline/kernel_mask.hpp) and faultline on
// the kernels it stands for. A hidden facility must fail at the raw-syscall layer exactly as the old
// kernel fails it; the profiles must come from the table; and faultline's choices, reasons and failures
// on a masked kernel must be the ones a user of that kernel meets. Every test that sets a mask does so in
// a child (run_child), so the rest of the suite keeps the mask it runs under (FAULTLINE_KERNEL in CI).
// Not signal context, except the handlers noted.
#include <gtest/gtest.h>

#include <csetjmp>
#include <string>
#include <thread>

#include "backend/uffd/uffd.hpp"
#include "faultline/faultline.hpp"
#include "faultline/kernel_mask.hpp"
#include "os/linux/uffd.hpp"
#include "region/table.hpp"
#include "support/child.hpp"
#include "support/pages.hpp"

namespace faultline {
namespace {

using namespace faultline::test;

bool later_than(const kernel_mask::Facility& f, int major, int minor) {
  return f.major > major || (f.major == major && f.minor > minor);
}

void must_set(const char* spec) {
  if (auto r = kernel_mask::set(spec); !r.ok()) {
    std::printf("kernel_mask::set(%s): %s\n", spec, r.error().message().c_str());
    _exit(90);
  }
}

// The profiles are the table: a version hides exactly the facilities that came after it.
TEST(KernelMask, ProfilesAreDerivedFromTheTable) {
  ChildResult r = run_child([] {
    auto table = kernel_mask::facilities();
    if (table.size() < 30) _exit(1);
    for (auto [major, minor] : {std::pair{5, 15}, std::pair{6, 1}, std::pair{6, 6}}) {
      must_set((std::to_string(major) + "." + std::to_string(minor)).c_str());
      for (const auto& f : table) {
        const bool expect = f.kind != kernel_mask::Kind::privilege && later_than(f, major, minor);
        if (kernel_mask::hidden(f.name) != expect) {
          std::printf("%d.%d: %s hidden=%d\n", major, minor, f.name, !expect);
          _exit(2);
        }
      }
    }
    // The kernels the issue names, by name.
    must_set("6.1");
    for (const char* name : {"WP_ASYNC", "PAGEMAP_SCAN", "POISON", "UFFDIO_POISON", "MOVE", "WP_UNPOPULATED"}) {
      if (!kernel_mask::hidden(name)) _exit(3);
    }
    for (const char* name : {"/dev/userfaultfd", "MINOR_SHMEM", "SIGBUS", "UFFDIO_WRITEPROTECT"}) {
      if (kernel_mask::hidden(name)) _exit(4);
    }
    must_set("5.15");
    if (!kernel_mask::hidden("/dev/userfaultfd") || !kernel_mask::hidden("EXACT_ADDRESS")) _exit(5);
    if (kernel_mask::hidden("MADV_POPULATE") || kernel_mask::hidden("UFFD_USER_MODE_ONLY")) _exit(6);
    must_set("none");
    if (!kernel_mask::hidden("userfaultfd") || !kernel_mask::hidden("/dev/userfaultfd")) _exit(7);
    if (kernel_mask::hidden("WP_ASYNC")) _exit(8);  // a setting, not a version
    kernel_mask::clear();
    for (const auto& f : table) {
      if (kernel_mask::hidden(f.name)) _exit(9);
    }
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// A spec that does not parse changes nothing and names the item; a feature and its ioctl go together.
TEST(KernelMask, ABadSpecChangesNothingAndSaysWhich) {
  ChildResult r = run_child([] {
    must_set("6.1");
    auto bad = kernel_mask::set("5.15,frobnicate");
    if (bad.ok() || bad.error().code() != Errc::invalid_argument) _exit(1);
    if (bad.error().message().find("'frobnicate'") == std::string::npos) _exit(2);
    if (kernel_mask::current() != "6.1" || !kernel_mask::hidden("WP_ASYNC") || kernel_mask::hidden("/dev/userfaultfd")) {
      _exit(3);
    }
    must_set(" UFFDIO_POISON , current");
    if (kernel_mask::current() != "UFFDIO_POISON" || !kernel_mask::hidden("POISON") || kernel_mask::hidden("WP_ASYNC")) {
      _exit(4);
    }
    must_set("");
    if (!kernel_mask::current().empty()) _exit(5);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// At the raw-syscall layer, where every faultline system call passes: UFFDIO_API offers less and refuses
// what it does not offer, registration reports fewer ioctls, hidden ioctls fail with EINVAL,
// PAGEMAP_SCAN with ENOTTY, the system call with EPERM, the device is missing or forbidden.
TEST(KernelMask, HiddenFacilitiesFailAsTheOldKernelFailsThem) {
  ChildResult r = run_child([] {
    kernel_mask::clear();  // this kernel as it is (the suite may run under a mask)
    if (!userfaultfd_available().ok()) _exit(77);
    const long own_dev = os::raw_open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);  // root: yes; others: EACCES
    if (!os::is_err(own_dev)) os::raw_close(static_cast<int>(own_dev));
    must_set("6.1");
    const long fd = os::uffd_open();
    if (os::is_err(fd)) _exit(1);
    std::uint64_t features = 0, ioctls = 0;
    if (os::is_err(os::uffd_api(static_cast<int>(fd), 0, &features, &ioctls))) _exit(2);
    if ((features & (UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_POISON | UFFD_FEATURE_MOVE | UFFD_FEATURE_WP_UNPOPULATED)) != 0) {
      _exit(3);
    }
    if ((features & (UFFD_FEATURE_SIGBUS | UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_MINOR_SHMEM)) == 0) _exit(4);
    void* mem = mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    std::uint64_t range_ioctls = 0;
    if (os::is_err(os::uffd_register(static_cast<int>(fd), reinterpret_cast<std::uintptr_t>(mem), kPage,
                                     UFFDIO_REGISTER_MODE_MISSING, &range_ioctls))) {
      _exit(5);
    }
    if ((range_ioctls >> _UFFDIO_POISON & 1) != 0 || (range_ioctls >> _UFFDIO_COPY & 1) == 0) _exit(6);
    if (os::uffd_poison(static_cast<int>(fd), reinterpret_cast<std::uintptr_t>(mem), kPage) != -EINVAL) _exit(7);
    const long second = os::uffd_open();
    if (os::uffd_api(static_cast<int>(second), UFFD_FEATURE_WP_ASYNC) != -EINVAL) _exit(8);
    const long pm = os::raw_open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    page_region regions[1];
    pm_scan_arg arg = pagemap_scan_arg(reinterpret_cast<std::uintptr_t>(mem), reinterpret_cast<std::uintptr_t>(mem) + kPage,
                                       regions, 1, PAGE_IS_PRESENT);
    if (os::pagemap_scan(static_cast<int>(pm), &arg) != -ENOTTY) _exit(9);
    must_set("5.15");
    if (os::raw_open("/dev/userfaultfd", O_RDWR | O_CLOEXEC) != -ENOENT) _exit(10);
    must_set("none");
    long dev_err = 0;
    if (os::uffd_open(0, &dev_err) != -EPERM || dev_err != -ENOENT) _exit(11);
    must_set("unprivileged");
    bool umo = false;
    const long u = os::uffd_open(0, &dev_err, &umo);
    if (os::is_err(u) || !umo || dev_err != -EACCES) _exit(12);
    kernel_mask::clear();
    const long dev = os::raw_open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (os::is_err(dev) != os::is_err(own_dev)) _exit(13);  // as it was before any mask
  });
  if (r.exited() && r.exit_code() == 77) GTEST_SKIP() << "needs userfaultfd on this kernel";
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// Linux 6.1 has no WP_ASYNC: dirty tracking falls back to mprotect (the signal backend, faster than
// synchronous write-protect) and says why; on Backend::userfaultfd to synchronous write-protect; asking
// for the asynchronous kind there is refused, naming the feature.
TEST(OlderKernels, DirtyTrackingFallsBackAndSaysWhy) {
  FAULTLINE_SKIP_WITHOUT_USERFAULTFD();
  ChildResult r = run_child([] {
    must_set("6.1");
    for (Backend b : {Backend::automatic, Backend::userfaultfd}) {
      RegionOptions o = on_backend(b, "cards", Policy::track_dirty);
      auto reg = reserve_region(16 * kPage, o);
      if (!reg.ok()) _exit(1);
      const std::string why = reg->backend_reason();
      std::printf("%s: %s\n", backend_name(b), why.c_str());
      if (why.find("WP_ASYNC (Linux 6.7)") == std::string::npos) _exit(2);
      if (b == Backend::automatic ? reg->backend() != Backend::signals
                                  : why.find("synchronous write-protect") == std::string::npos) {
        _exit(3);
      }
      auto* p = static_cast<volatile char*>(reg->data());
      p[3 * kPage] = 1;
      p[9 * kPage] = 1;
      auto d = reg->collect_dirty();
      if (!d.ok() || *d != std::vector<std::size_t>{3, 9}) _exit(4);
    }
    RegionOptions o = on_backend(Backend::userfaultfd, "cards", Policy::track_dirty);
    o.dirty_tracking = DirtyTracking::async_wp;
    auto refused = reserve_region(kPage, o);
    if (refused.ok() || refused.error().code() != Errc::unsupported ||
        refused.error().message().find("WP_ASYNC") == std::string::npos) {
      _exit(5);
    }
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// Where userfaultfd is forbidden (many containers): every policy runs on signals, saying why; what only
// userfaultfd can do is refused with the reason.
TEST(OlderKernels, WithoutUserfaultfdSignalsServeAndTheRestIsRefused) {
  ChildResult r = run_child([] {
    must_set("none");
    RegionOptions o = on_backend(Backend::automatic, "contained", Policy::zero_fill);
    auto zero = reserve_region(4 * kPage, o);
    if (!zero.ok() || zero->backend() != Backend::signals) _exit(1);
    if (std::string(zero->backend_reason()).find("userfaultfd(2): EPERM") == std::string::npos) _exit(2);
    if (static_cast<volatile char*>(zero->data())[kPage] != 0) _exit(3);
    o.policy = Policy::provider;
    o.fill = fill_pattern;
    o.max_resident_pages = 2;
    auto bounded = explain_backend(o);
    if (bounded.ok() || bounded.error().code() != Errc::unsupported ||
        bounded.error().message().find("need userfaultfd") == std::string::npos) {
      _exit(4);
    }
    if (userfaultfd_available().ok()) _exit(5);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// Before Linux 6.6 there is no UFFDIO_POISON: a failed fill still ends the faulting access in SIGBUS with
// the cause (faultline queues it to the thread), and a program that ignores SIGBUS cannot ignore it.
TEST(OlderKernels, FailedFillWithoutPoisonEndsInSigbusWithTheCause) {
  FAULTLINE_SKIP_WITHOUT_USERFAULTFD();
  for (bool ignored : {false, true}) {
    ChildResult r = run_child([&] {
      must_set("6.1");
      if (ignored) signal(SIGBUS, SIG_IGN);
      auto reg = reserve_region(4 * kPage, filled_on_uffd("old", Policy::provider, fill_fails));
      if (!reg.ok()) _exit(90);
      (void)static_cast<volatile char*>(reg->data())[kPage + 5];
      _exit(1);  // never a zero page
    });
    EXPECT_TRUE(r.signaled() && r.signal() == SIGBUS) << (ignored ? "SIG_IGN: " : "") << r;
    EXPECT_NE(r.output.find("provider for region 'old' failed on page 1: EIO (errno 5): disk on fire"),
              std::string::npos) << r;
  }
}

// Without UFFDIO_POISON, failing a page that exists already (a second message for a fault that was
// served) signals nobody: here the main thread, which read the page, would die of a stray SIGBUS.
// A failed fill for a page that exists already (a stale second message: another fill served the
// fault) signals nobody and counts no failure: with UFFDIO_POISON (its EEXIST) and without it (the
// page's presence, under the 6.1 profile).
void fail_a_page_that_exists(const char* profile) {
  ChildResult r = run_child([profile] {
    if (profile != nullptr) must_set(profile);
    RegionOptions o = filled_on_uffd("served", Policy::provider, fill_pattern, fill_tag(7));
    o.readahead_max = 1;
    auto reg = reserve_region(4 * kPage, o);
    if (!reg.ok()) _exit(90);
    if (!check_pattern(reg->data(), 7, 0, kPage)) _exit(1);
    const long main_tid = tid();
    const auto page = reinterpret_cast<std::uintptr_t>(reg->data());
    std::thread([&] {
      detail::RegionImpl* impl = region::find_and_pin(page);
      if (impl == nullptr) _exit(2);
      static_cast<backend::uffd::UffdRegion*>(impl)->fail_page(page, EIO, "a stale message", main_tid);
      region::unpin(impl);
    }).join();
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGBUS);
    if (sigpending(&set) == 0 && sigismember(&set, SIGBUS)) _exit(3);
    if (!check_pattern(reg->data(), 7, 0, kPage)) _exit(4);
    if (reg->stats().failures != 0) _exit(5);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

TEST(OlderKernels, FailingAPageThatExistsSignalsNobody) {
  FAULTLINE_SKIP_WITHOUT_USERFAULTFD();
  fail_a_page_that_exists("6.1");
}

TEST(Uffd, FailingAPageThatExistsSignalsNobody) {
  FAULTLINE_SKIP_WITHOUT_USERFAULTFD();
  fail_a_page_that_exists(nullptr);
}

}  // namespace
}  // namespace faultline
