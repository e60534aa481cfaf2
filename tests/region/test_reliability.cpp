// tests/region/test_reliability.cpp: the promise under abuse: never a zero page, never a hang, never
// someone else's memory. One test per defect found by adversarial probing (each failed before its fix),
// on every backend where it applies: forked children and inherited regions, validate-first adoption,
// reads racing a reset, memory unmapped behind faultline's back, the mapping-count limit, registration
// while handlers are slow or register themselves, silent and dead remote pagers, threads that cannot
// start, prefault of absurd ranges, exceptions and invalid values, transient failures, stop-the-world
// under a full signal queue, long backend reasons.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <setjmp.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "faultline/fault_injection.hpp"
#include "faultline/region.hpp"
#include "faultline/remote_pager.hpp"
#include "faultline/report.hpp"
#include "faultline/thread.hpp"
#include "faultline/world.hpp"
#include "support/backends.hpp"
#include "support/child.hpp"
#include "support/pages.hpp"
#include "support/signals.hpp"
#include "support/spin.hpp"

namespace faultline {
namespace {

using namespace test;  // tests/support/
using Clock = std::chrono::steady_clock;

class Reliability : public OnEveryBackend {};
class ThreadedReliability : public OnEveryBackend {};

// ---- fork -------------------------------------------------------------------------------------------

// A child that lets its copy of a region go changes nothing of the parent's: the parent reads every byte
// right afterwards, the pages filled before the fork and the ones filled after it.
TEST_P(Reliability, ForkedChildResetLeavesTheParentsRegionAlone) {
  ChildResult r = run_child([&] {
    auto reg = must_reserve(16 * kPage, with_fill(opts("parent-heap", Policy::provider), fill_pattern, fill_tag(21)));
    if (!check_pattern(reg.data(), 21, 0, 8 * kPage)) _exit(1);
    const int status = fork_and_wait([&] {
      const bool ok = reg.reset().ok();  // the child's copy goes; nothing of the parent's may
      _exit(ok ? 0 : 5);
    });
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) _exit(2);
    if (!check_pattern(reg.data(), 21, 0, 16 * kPage)) _exit(3);  // never a zero page
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// In a child, an inherited provider region serves its missing pages where it can (userfaultfd: the child's
// own fd, in the faulting thread) and fails them with the cause where it cannot (the signal backend shares
// the pages with the parent, which alone fills them): never a zero page.
TEST_P(Reliability, ForkedChildAccessToAnUnfilledPage) {
  if (sigbus_to_self_under_emulator()) GTEST_SKIP() << "under qemu-user: " << kQemuSigbusToSelf;
  ChildResult r = run_child([&] {
    if (!report::enable().ok()) _exit(90);
    auto reg = must_reserve(16 * kPage, with_fill(opts("inherited", Policy::provider), fill_pattern, fill_tag(22)));
    (void)static_cast<volatile char*>(reg.data())[0];
    std::fflush(nullptr);
    const int status = fork_and_wait([&] {
      if (!check_pattern(reg.data(), 22, 12 * kPage, kPage)) _exit(1);  // a zero page would fail here
      std::printf("child read the right bytes\n");
      std::fflush(stdout);
      _exit(0);
    });
    if (WIFSIGNALED(status)) std::printf("child killed by %d\n", WTERMSIG(status));
    if (WIFEXITED(status)) std::printf("child exited %d\n", WEXITSTATUS(status));
  });
  ASSERT_TRUE(r.exited() && r.exit_code() == 0) << r;
  if (uffd()) {
    EXPECT_NE(r.output.find("child read the right bytes"), std::string::npos) << r;
  } else {
    EXPECT_NE(r.output.find("child killed by 7"), std::string::npos) << r;  // SIGBUS
    EXPECT_NE(r.output.find("inherited across fork()"), std::string::npos) << r;
  }
}

TEST_P(ThreadedReliability, ForkedChildAccessToAPagerRegionFailsWithTheCause) {
  if (sigbus_to_self_under_emulator()) GTEST_SKIP() << "under qemu-user: " << kQemuSigbusToSelf;
  ChildResult r = run_child([&] {
    RegionOptions o = with_fill(opts("paged", Policy::pager), fill_pattern, fill_tag(23));
    o.pager = must_start_pager();
    o.fill_timeout = std::chrono::milliseconds(5000);
    auto reg = must_reserve(16 * kPage, o);
    if (!check_pattern(reg.data(), 23, 0, kPage)) _exit(1);
    std::fflush(nullptr);
    const auto t0 = Clock::now();
    const int status = fork_and_wait([&] {
      (void)static_cast<volatile char*>(reg.data())[9 * kPage];  // the pager's threads are not here
      _exit(3);
    });
    // At once, not after fill_timeout: nothing in the child could ever answer.
    const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
    std::printf("child %s %d after %lld ms\n", WIFSIGNALED(status) ? "killed by" : "exited",
                WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), static_cast<long long>(waited));
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGBUS || waited > 2500) _exit(4);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
  EXPECT_NE(r.output.find("inherited across fork()"), std::string::npos) << r;
}

// ---- validate first, act last --------------------------------------------------------------------

// adopt_region that overlaps a live region fails without touching anything: the live region's data and
// the plain memory around it keep their contents and protections.
TEST(ReliabilitySignals, AdoptThatOverlapsChangesNothing) {
  ChildResult r = run_child([] {
    test::Page plain(PROT_READ | PROT_WRITE, 8);
    char* p = plain.get();
    std::memset(p, 'x', 8 * kPage);
    RegionOptions z = on_signals("live", Policy::zero_fill);
    auto live = adopt_region(p + 2 * kPage, 3 * kPage, z);
    if (!live.ok()) _exit(90);
    p[2 * kPage] = 'L';  // the live region's data
    p[3 * kPage + 5] = 'M';
    auto again = adopt_region(p, 7 * kPage, on_signals("overlap", Policy::zero_fill));
    if (again.ok() || again.error().code() != Errc::already_exists) _exit(1);
    for (std::size_t i : {0, 1, 5, 6, 7}) {
      if (p[i * kPage + 3] != 'x') _exit(2);  // not dropped
      p[i * kPage + 3] = 'y';                  // still writable: protections unchanged
    }
    if (p[2 * kPage] != 'L' || p[3 * kPage + 5] != 'M') _exit(3);
    // The region's end gives the memory its protection back.
    if (!live->reset().ok()) _exit(4);
    p[4 * kPage] = 'z';
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// ---- teardown races -------------------------------------------------------------------------------

thread_local sigjmp_buf t_jmp;
void on_fault_jump(int, siginfo_t*, void*) { siglongjmp(t_jmp, 1); }

// Set (by the call observer) when reset closes the region's memory: its PROT_NONE on userfaultfd
// regions, its munmap on the others. After that the address may be mapped again by anyone (a thread
// stack, an allocator), and a read of it says nothing about faultline.
std::atomic<std::uintptr_t> g_racing_base{0};
std::atomic<bool> g_racing_closed{false};
void note_closing(fault_injection::Op op, std::uintptr_t a1, std::uintptr_t a2, std::uintptr_t a3, long, void*) {
  using fault_injection::Op;
  const std::uintptr_t b = g_racing_base.load();
  const bool closes = op == Op::munmap || (op == Op::mprotect && a3 == PROT_NONE);
  if (closes && b != 0 && a1 <= b && b < a1 + a2) g_racing_closed.store(true);
}

// Threads that read a provider or pager region while another thread resets it read the right bytes or
// fault; never zeros.
TEST_P(ThreadedReliability, ReadsRacingResetNeverSeeZeros) {
  ChildResult r = run_child([&] {
    // Before faultline: the previous action of faults nobody resolves.
    install_handler(SIGSEGV, on_fault_jump, SA_NODEFER);
    install_handler(SIGBUS, on_fault_jump, SA_NODEFER);
    const Pager pager = must_start_pager({.name = "race", .threads = 2});
    std::atomic<long> zeros{0}, faults{0}, reads{0};
    fault_injection::set_observer(note_closing, nullptr);
    for (int round = 0; round < 100; ++round) {
      for (Policy policy : {Policy::provider, Policy::pager}) {
        RegionOptions o = with_fill(opts("racing", policy), fill_pattern, fill_tag(24));
        if (policy == Policy::pager) o.pager = pager;
        auto reg = must_reserve(64 * kPage, o);
        const auto* w = static_cast<const volatile std::uint64_t*>(reg.data());
        g_racing_closed = false;
        g_racing_base = reinterpret_cast<std::uintptr_t>(reg.data());
        std::atomic<bool> go{true};
        std::vector<std::thread> ts;
        for (int t = 0; t < 2; ++t) {
          ts.emplace_back([&, t] {
            std::mt19937 rng(static_cast<unsigned>(round * 7 + t));
            while (go.load()) {
              const std::size_t i = rng() % (64 * kPage / 8);
              if (sigsetjmp(t_jmp, 1) != 0) {
                leave_handler();
                faults++;
                return;  // the memory is gone
              }
              const std::uint64_t v = w[i];
              if (v == 0 && !g_racing_closed.load()) zeros++;  // read while the region was still open
              reads++;
            }
          });
        }
        while (reads.load() < (round + 1) * 40) std::this_thread::yield();
        if (!reg.reset().ok()) _exit(91);
        go = false;
        for (auto& t : ts) t.join();
        g_racing_base = 0;
      }
    }
    fault_injection::disarm();
    std::printf("reads %ld faults %ld zeros %ld\n", reads.load(), faults.load(), zeros.load());
    if (zeros.load() != 0) _exit(1);
  }, 120);
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// ---- memory that is no longer faultline's ------------------------------------------------------------

// The program unmaps a region behind faultline's back and maps its own memory at the same address:
// faultline's later calls (reset, discard, evict, a protection batch) never act on the new mapping.
TEST_P(Reliability, MemoryUnmappedBehindItsBackIsLeftAlone) {
  // The signal backend learns of an munmap from the unmap monitor, which reads userfaultfd UNMAP events:
  // without userfaultfd, anonymous memory mapped again at the same place cannot be told from the region's.
  if (auto u = userfaultfd_available(); !u.ok()) {
    GTEST_SKIP() << "needs userfaultfd's UNMAP events (the unmap monitor): " << u.error().message();
  }
  ChildResult r = run_child([&] {
    RegionOptions o = uffd() ? with_fill(opts("vanished", Policy::provider), fill_pattern, fill_tag(25))
                             : opts("vanished", Policy::zero_fill);
    auto reg = must_reserve(8 * kPage, o);
    auto* p = static_cast<char*>(reg.data());
    (void)static_cast<volatile char*>(p)[0];
    ProtectBatch batch;
    const bool batched = !uffd() && batch.add(reg, 0, 2, perm_none).ok();
    munmap(p, 8 * kPage);  // the program's error ...
    void* mine = mmap(p, 8 * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (mine != p) _exit(90);
    std::memset(p, 'N', 8 * kPage);  // ... and someone else's memory there since
    if (reg.discard(0, 8).ok()) _exit(1);
    if (batched && batch.commit().ok()) _exit(2);
    auto gone = reg.reset();
    if (gone.ok() || gone.error().code() != Errc::not_found) _exit(3);
    for (std::size_t i = 0; i < 8 * kPage; i += kPage) {
      if (p[i] != 'N') _exit(4);  // not dropped
      p[i] = 'O';                 // not protected
    }
    std::vector<unsigned char> vec(8);
    if (mincore(p, 8 * kPage, vec.data()) != 0) _exit(5);  // not unmapped
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// A protection batch that outlives its region applies nothing at commit, and says so.
TEST(ReliabilitySignals, BatchCommittedAfterItsRegionEndedAppliesNothing) {
  ChildResult r = run_child([] {
    auto reg = must_reserve(4 * kPage, on_signals("short-lived", Policy::zero_fill));
    void* at = reg.data();
    ProtectBatch batch;
    if (!batch.add(reg, 0, 4, perm_none).ok()) _exit(1);
    if (!reg.reset().ok()) _exit(2);
    void* mine = mmap(at, 4 * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (mine != at) _exit(90);
    static_cast<char*>(mine)[0] = 1;
    auto c = batch.commit();
    if (c.ok() || c.error().code() != Errc::not_found) _exit(3);
    static_cast<char*>(mine)[kPage] = 2;  // still writable
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// ---- the mapping-count limit ------------------------------------------------------------------------

// Sparse first touches of a huge zero_fill or track_dirty region would split its mapping past
// vm.max_map_count; faultline widens the change instead, and every byte stays right.
TEST(ReliabilitySignals, SparseTouchesPastTheMappingLimit) {
  for (Policy policy : {Policy::zero_fill, Policy::track_dirty}) {
    ChildResult r = run_child([&] {
      const std::size_t pages = std::size_t{16} << 20;  // 64 GiB
      auto reg = must_reserve(pages * kPage, on_signals("huge", policy));
      auto* p = static_cast<volatile std::uint32_t*>(reg.data());
      const std::size_t n = 40000, step = 211;  // 40 000 scattered pages: past 65 530 / 2
      for (std::size_t k = 0; k < n; ++k) p[k * step * kPage / 4] = static_cast<std::uint32_t>(k + 1);
      for (std::size_t k = 0; k < n; ++k) {
        if (p[k * step * kPage / 4] != k + 1) _exit(1);
      }
      // The process still has mappings to spare: 1 000 more work (malloc needs them too).
      for (int i = 0; i < 1000; ++i) {
        if (mmap(nullptr, kPage, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED) _exit(3);
      }
      if (policy == Policy::track_dirty) {
        auto d = reg.collect_dirty();
        if (!d.ok()) std::fprintf(stderr, "%s\n", d.error().message().c_str());
        else if (d->size() < n) std::fprintf(stderr, "%zu dirty\n", d->size());
        if (!d.ok() || d->size() < n) _exit(2);  // every written page reported (some extra is allowed)
      }
    }, 300);
    EXPECT_TRUE(r.exited() && r.exit_code() == 0) << policy_name(policy) << ": " << r;
  }
}

// A provider region cannot widen (its unfilled pages must stay closed): past the limit, the access ends
// in SIGBUS whose cause names the mapping count and the limit.
TEST(ReliabilitySignals, FilledRegionPastTheMappingLimitSaysWhy) {
  FAULTLINE_SKIP_UNDER_EMULATOR(kQemuSigbusToSelf);
  ChildResult r = run_child([] {
    const std::size_t pages = std::size_t{1} << 20;
    auto reg = must_reserve(pages * kPage, filled_on_signals("sparse-image", Policy::provider, fill_pattern));
    auto* p = static_cast<volatile char*>(reg.data());
    for (std::size_t k = 0; k < pages / 3; ++k) (void)p[k * 3 * kPage];
    _exit(1);
  }, 300);
  EXPECT_TRUE(r.signaled() && r.signal() == SIGBUS) << r;
  EXPECT_NE(r.output.find("vm.max_map_count"), std::string::npos) << r;
}

// ---- registration never hostage to a handler --------------------------------------------------------

std::atomic<int> g_release{0};
FillStatus blocking_fill(const FillRequest& req, void* data) {
  while (g_release.load() == 0) {
  }
  return fill_pattern(req, data);
}

// A provider fill that takes as long as it likes in one thread does not hold up registration in
// another, nor reset of another region: the fill is released only after they all succeed.
TEST_P(Reliability, RegistrationGoesOnWhileAFillIsSlow) {
  ChildResult r = run_child([&] {
    auto slow = must_reserve(4 * kPage, with_fill(opts("slow", Policy::provider), blocking_fill, fill_tag(26)));
    std::thread toucher([&] {
      if (!check_pattern(slow.data(), 26, 0, kPage)) _exit(1);
    });
    while (test::g_pattern_fills.load() == 0 && g_release.load() == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      static int spins = 0;
      if (++spins > 200) break;  // the fill is running (blocked) by now
    }
    for (int i = 0; i < 50; ++i) {
      auto other = must_reserve(kPage, opts("meanwhile", Policy::zero_fill), 2);
      if (!other.reset().ok()) _exit(3);
    }
    g_release = 1;
    toucher.join();
  }, 60);
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// A barrier that registers a region from inside its fault handler: the registration cannot wait for
// itself.
std::atomic<int> g_inner_ok{0};
Disposition registering_barrier(FaultContext& ctx, const RegionInfo& info, void*) {
  auto inner = reserve_region(kPage, on_signals("from-a-handler", Policy::zero_fill));
  g_inner_ok = inner.ok() ? 1 : -1;
  if (inner.ok()) inner->reset().ok() ? void() : void();
  mprotect(reinterpret_cast<void*>(info.base), info.size, PROT_READ | PROT_WRITE);
  (void)ctx;
  return Disposition::resolved;
}

TEST(ReliabilitySignals, RegistrationFromInsideAHandler) {
  if (kTsan) GTEST_SKIP() << "TSan reports the deliberate allocation in a signal handler that this test makes";
  ChildResult r = run_child([] {
    RegionOptions o = on_signals("barrier", Policy::barrier, perm_none);
    o.barrier = registering_barrier;
    auto reg = must_reserve(kPage, o);
    static_cast<volatile char*>(reg.data())[0] = 1;
    if (g_inner_ok.load() != 1) _exit(1);
  }, 30);
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// fork() while another thread is inside a fault handler: the child can register and unregister regions.
TEST(ReliabilitySignals, ForkWhileAHandlerRunsLeavesAUsableChild) {
  if (kTsan) GTEST_SKIP() << "TSan cannot start threads in a child forked while another thread runs (\"dup thread\")";
  ChildResult r = run_child([] {
    RegionOptions o = filled_on_signals("slow", Policy::provider, blocking_fill, fill_tag(27));
    auto slow = must_reserve(kPage, o);
    std::thread toucher([&] { (void)static_cast<volatile char*>(slow.data())[0]; });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let it enter the fill (no timing is asserted)
    const int status = fork_and_wait([] {
      auto mine = must_reserve(kPage, on_signals("in-the-child", Policy::zero_fill), 1);
      static_cast<volatile char*>(mine.data())[0] = 1;
      _exit(mine.reset().ok() ? 0 : 2);
    });
    g_release = 1;
    toucher.join();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) _exit(3);
  }, 60);
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// ---- remote pagers that are silent or dead ---------------------------------------------------------

// A remote pager stopped (SIGSTOP) or killed while threads fault all over a 16 GiB region: every thread's
// access ends in SIGBUS within fill_timeout and a small bound, however large the region.
void remote_pager_outage(int how, long* worst_ms) {
  int socket = -1;
  const pid_t pager = fork_remote_pager(28, &socket);
  RegionOptions o = remote_paged("remote-16g", socket);
  o.fill_timeout = std::chrono::milliseconds(500);
  const std::size_t size = std::size_t{16} << 30;
  auto reg = must_reserve(size, o);
  if (!check_pattern(reg.data(), 28, 0, kPage)) _exit(91);
  kill(pager, how);
  if (how == SIGKILL) waitpid(pager, nullptr, 0);
  std::atomic<long> worst{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&, t] {
      const std::size_t at = size - (static_cast<std::size_t>(t) + 1) * (size / 5);  // far apart, to the end
      const auto t0 = Clock::now();
      if (sigsetjmp(t_jmp, 1) == 0) {
        (void)static_cast<volatile char*>(reg.data())[at];
        _exit(92);  // a page from nowhere
      }
      leave_handler();
      const long ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
      long w = worst.load();
      while (ms > w && !worst.compare_exchange_weak(w, ms)) {
      }
    });
  }
  for (auto& t : ts) t.join();
  *worst_ms = worst.load();
  if (how == SIGSTOP) {
    kill(pager, SIGKILL);
    waitpid(pager, nullptr, 0);
  }
}

TEST(ReliabilityRemote, StoppedOrKilledPagerFailsWithinTheTimeout) {
  FAULTLINE_SKIP_WITHOUT_USERFAULTFD();
  for (int how : {SIGSTOP, SIGKILL}) {
    ChildResult r = run_child([&] {
      install_handler(SIGBUS, on_fault_jump, SA_NODEFER);
      long worst = 0;
      remote_pager_outage(how, &worst);
      std::printf("worst time to SIGBUS: %ld ms (fill_timeout 500 ms)\n", worst);
      if (worst > 2500) _exit(1);  // a generous bound (5x fill_timeout); the figure is what matters
    }, 60);
    EXPECT_TRUE(r.exited() && r.exit_code() == 0) << sigabbrev_np(how) << ": " << r;
    std::printf("[remote pager %s] %s", sigabbrev_np(how), r.output.c_str());
  }
}

// Ending a remote-paged region while its pager process still serves it returns: the pager holds a copy of
// the region's userfaultfd, so the range must be unregistered before it is unmapped (an munmap of a
// registered range waits until someone reads the UNMAP event, which nobody would). Then the pager sees
// the region go, and the program can reuse the address range.
TEST(ReliabilityRemote, ResetWhileThePagerServesReturns) {
  FAULTLINE_SKIP_WITHOUT_USERFAULTFD();
  ChildResult r = run_child([] {
    int sock = -1;
    const pid_t pager = fork_remote_pager(7, &sock);
    auto reg = reserve_region(16 * kPage, remote_paged("remote", sock));
    if (!reg.ok()) _exit(2);
    const auto* words = static_cast<const std::uint64_t*>(reg->data());
    if (words[0] != pattern(7, 0)) _exit(3);  // served: the pager is alive and connected
    if (!reg->reset().ok()) _exit(4);         // must not wait for the pager
    kill(pager, SIGKILL);
    waitpid(pager, nullptr, 0);
    close(sock);
    _exit(0);
  }, 20);
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// The program requires the pager's uid: a pager running as someone else gets nothing.
TEST(ReliabilityRemote, PagerCredentialsAreChecked) {
  FAULTLINE_SKIP_WITHOUT_USERFAULTFD();
  ChildResult r = run_child([] {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) _exit(90);
    RegionOptions o = remote_paged("picky", sv[0]);
    o.remote_pager_uid = static_cast<long>(getuid()) + 1;  // not us (the other end is this process)
    auto reg = reserve_region(kPage, o);
    if (reg.ok() || reg.error().message().find("is not the one the region's options require") == std::string::npos) {
      _exit(1);
    }
    char byte;
    if (recv(sv[1], &byte, 1, MSG_DONTWAIT) != -1) _exit(2);  // nothing was sent
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// ---- threads, ranges, values, transient failures ----------------------------------------------------

// The userfaultfd handler thread's buffer cannot be mapped, or the thread cannot be created: the call
// that needed it fails with the cause; nothing hangs.
TEST(ReliabilityUffd, HandlerThreadThatCannotStartIsAnError) {
  FAULTLINE_SKIP_WITHOUT_USERFAULTFD();
  for (const char* spec : {"thread_create:1:EAGAIN", "mmap:2:ENOMEM"}) {
    ChildResult r = run_child([&] {
      const RegionOptions o = filled_on_uffd("needs-the-thread", Policy::provider, fill_pattern);
      if (!fault_injection::arm_from_spec(spec).ok()) _exit(90);
      auto reg = reserve_region(4 * kPage, o);
      fault_injection::disarm();
      if (reg.ok()) {
        // The injected failure hit something else first: then the region must work.
        if (!check_pattern(reg->data(), 0, 0, 4 * kPage)) _exit(1);
        _exit(0);
      }
      std::printf("%s\n", reg.error().message().c_str());
      auto again = reserve_region(4 * kPage, o);  // not cached: the next try works
      if (!again.ok() || !check_pattern(again->data(), 0, 0, 4 * kPage)) _exit(2);
    }, 30);
    EXPECT_TRUE(r.exited() && r.exit_code() == 0) << spec << ": " << r;
  }
}

TEST(ReliabilityApi, PrefaultOfAbsurdRangesReturns) {
  ChildResult r = run_child([] {
    auto reg = must_reserve(4 * kPage, on_signals("small", Policy::zero_fill));
    if (prefault(reg.data(), SIZE_MAX, Access::read).ok()) _exit(1);                        // wraps around
    if (!prefault(reinterpret_cast<void*>(kPage), std::size_t{1} << 44, Access::read).ok()) _exit(2);  // 16 TiB
    if (static_cast<volatile char*>(reg.data())[0] != 0) _exit(3);
  }, 20);
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

TEST(ReliabilityApi, NoExceptionAndNoInvalidValue) {
  ChildResult r = run_child([] {
    test::Page mine(PROT_READ | PROT_WRITE);
    auto huge = adopt_region(mine.get(), std::size_t{1} << 62, on_signals("huge", Policy::zero_fill));  // no throw
    if (huge.ok()) _exit(1);
    RegionOptions bad = on_signals("bad", static_cast<Policy>(42));
    auto b = reserve_region(kPage, bad);
    if (b.ok() || b.error().code() != Errc::invalid_argument) _exit(2);
    RegionOptions bad_backend = on_signals("bad", Policy::zero_fill);
    bad_backend.backend = static_cast<Backend>(9);
    if (reserve_region(kPage, bad_backend).ok()) _exit(3);
    if (!fault_injection::arm({{fault_injection::Op::alloc, 1, 0, ENOMEM}}).ok()) _exit(90);
    auto oom = reserve_region(kPage, on_signals("oom", Policy::zero_fill));
    fault_injection::disarm();
    if (oom.ok() || oom.error().code() != Errc::no_space) _exit(4);
    if (region_count() != 0) _exit(5);  // no trace
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// One EMFILE while opening a userfaultfd is not the last word: descriptors freed, the next request works,
// even when userfaultfd was asked for explicitly.
TEST(ReliabilityUffd, TransientFailureIsTriedAgain) {
  FAULTLINE_SKIP_WITHOUT_USERFAULTFD();
  ChildResult r = run_child([] {
    const RegionOptions o = on_uffd("retry");
    if (!fault_injection::arm_from_spec("userfaultfd:1:EMFILE:count=2").ok()) _exit(90);
    auto first = reserve_region(kPage, o);
    fault_injection::disarm();
    if (first.ok() || first.error().message().find("EMFILE") == std::string::npos) _exit(1);
    (void)must_reserve(kPage, o, 2);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// world::stop() when the signal queue is full names the real cause (tgkill EAGAIN), not a timeout.
TEST(ReliabilityThreads, StopUnderAFullSignalQueueNamesTheCause) {
  ChildResult r = run_child([] {
    auto self = attach_thread();
    if (!self.ok()) _exit(90);
    std::atomic<bool> go{true};
    std::thread other([&] {
      auto a = attach_thread();
      while (go.load()) std::this_thread::yield();
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let it attach (no timing is asserted)
    struct rlimit rl{0, 0};
    if (setrlimit(RLIMIT_SIGPENDING, &rl) != 0) _exit(91);
    world::StopOptions so;
    so.timeout = std::chrono::milliseconds(300);
    auto s = world::stop(so);
    go = false;
    other.join();
    if (s.ok()) _exit(1);
    std::printf("%s\n", s.error().message().c_str());
    if (s.error().message().find("EAGAIN") == std::string::npos ||
        s.error().message().find("RLIMIT_SIGPENDING") == std::string::npos) {
      _exit(2);
    }
  }, 30);
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// A backend reason longer than 95 characters is given whole.
TEST(ReliabilityApi, LongBackendReasonIsWhole) {
  ChildResult r = run_child([] {
    if (!fault_injection::arm_from_spec("userfaultfd:1:ENOSYS:count=0,open:1:ENOENT:count=0").ok()) _exit(90);
    RegionOptions o;
    o.name = "why-not";
    auto reg = must_reserve(kPage, o);
    fault_injection::disarm();
    const std::string why = reg.backend_reason();
    std::printf("%s\n", why.c_str());
    if (why.size() <= 95 || why.find("/dev/userfaultfd") == std::string::npos) _exit(1);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

FAULTLINE_ON_EVERY_BACKEND(Reliability);
INSTANTIATE_TEST_SUITE_P(All, ThreadedReliability, ::testing::Values(kBackends[0], kBackends[1]),
                         [](const auto& p) { return std::string(p.param.name); });

}  // namespace
}  // namespace faultline
