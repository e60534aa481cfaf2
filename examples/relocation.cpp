// examples/relocation.cpp: a concurrent relocating collector in miniature.
//
// A heap of linked objects lives in a faultline region with the barrier policy (old space). Mutator
// threads keep walking the ring and incrementing each object's counter through pointers into old
// space. Meanwhile a collector thread, page by page, protects the old page (PROT_NONE), copies its
// objects to new space and publishes the forwarding. A mutator that touches a protected page traps;
// the barrier waits until that page is forwarded, then heals the register that held the old address
// (faultline::heal) so the instruction re-executes against the new copy, or, when no register provably
// holds the pointer, emulates the access against the new copy (faultline::emulate). Objects keep their
// offsets, so forwarding is "same offset in new space".
//
// At the end every object's counter must equal the number of increments the mutators made to it (an
// increment that landed in a stale copy would be lost), and every object read had the right identity.
// Prints how many faults were healed, emulated and declined. Exit status 0 only when all is consistent,
// nothing was declined and something was healed (each failed check is named on stderr).
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "faultline/emulate.hpp"
#include "faultline/region.hpp"
#include "faultline/thread.hpp"

namespace {

struct Object {
  std::uint64_t id;
  std::atomic<std::uint64_t> count;
  Object* next;
  std::uint64_t pad;
};

constexpr std::size_t kObjects = 8192;
std::size_t g_page = 4096;
std::uintptr_t g_old = 0, g_new = 0;
std::size_t g_size = 0;
std::atomic<std::uint8_t>* g_forwarded = nullptr;  // per old page: copied and published
std::atomic<std::uint64_t> g_healed{0}, g_emulated{0}, g_declined{0};

// Forwarding: the new address of what was at `old` (0 if not in old space). Waits (bounded) for a page
// the collector is copying right now. Signal context.
std::uintptr_t forward(std::uintptr_t old, void*) {
  if (old < g_old || old >= g_old + g_size) return 0;
  const std::size_t page = (old - g_old) / g_page;
  for (long spin = 0; g_forwarded[page].load(std::memory_order_acquire) == 0; ++spin) {
    if (spin > 2'000'000'000L) return 0;
  }
  return g_new + (old - g_old);
}

faultline::Disposition barrier(faultline::FaultContext& ctx, const faultline::RegionInfo&, void*) {
  if (faultline::heal(ctx, forward, nullptr) == faultline::EmulateStatus::ok) {
    g_healed.fetch_add(1, std::memory_order_relaxed);
    return faultline::Disposition::resolved;
  }
  faultline::Instruction in;
  const std::uintptr_t target = faultline::decode(ctx, &in) == faultline::EmulateStatus::ok && in.has_memory
                                    ? forward(in.memory.address, nullptr)
                                    : 0;
  if (target != 0 && faultline::emulate(ctx, target) == faultline::EmulateStatus::ok) {
    g_emulated.fetch_add(1, std::memory_order_relaxed);
    return faultline::Disposition::resolved;
  }
  g_declined.fetch_add(1, std::memory_order_relaxed);
  return faultline::Disposition::declined;
}

}  // namespace

int main() {
  faultline::print_stats();  // each region's counters on stderr as it ends, and a summary at exit
  g_page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  g_size = kObjects * sizeof(Object);
  // Old space is one memfd mapped twice: the mutators' view (a faultline region with the barrier
  // policy) and the collector's own view, which stays readable after the mutators' pages are protected.
  const int fd = memfd_create("old-space", MFD_CLOEXEC);
  if (fd < 0 || ftruncate(fd, static_cast<off_t>(g_size)) != 0) return 1;
  void* view = mmap(nullptr, g_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  void* collector_view = mmap(nullptr, g_size, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (view == MAP_FAILED || collector_view == MAP_FAILED) return 1;
  faultline::RegionOptions o;
  o.name = "old-space";
  o.policy = faultline::Policy::barrier;
  o.perms = faultline::perm_read | faultline::perm_write;
  o.barrier = barrier;
  auto old_space = faultline::adopt_region(view, g_size, o);
  if (!old_space) {
    std::fprintf(stderr, "adopt_region: %s\n", old_space.error().message().c_str());
    return 1;
  }
  const std::size_t pages = g_size / g_page;
  if (!old_space->protect(0, pages, faultline::perm_read | faultline::perm_write)) return 1;  // open for now
  g_old = reinterpret_cast<std::uintptr_t>(view);
  void* ns = mmap(nullptr, g_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (ns == MAP_FAILED) return 1;
  g_new = reinterpret_cast<std::uintptr_t>(ns);
  std::vector<std::atomic<std::uint8_t>> forwarded(pages);
  g_forwarded = forwarded.data();

  auto* objects = reinterpret_cast<Object*>(g_old);
  for (std::size_t i = 0; i < kObjects; ++i) {
    objects[i].id = i * 7919 + 1;
    objects[i].count.store(0);
    objects[i].next = &objects[(i + 1) % kObjects];  // a ring
    objects[i].pad = 0;
  }

  constexpr unsigned kMutators = 4;
  std::atomic<bool> stop{false};
  std::atomic<unsigned> wrong_identity{0};
  std::vector<std::vector<std::uint64_t>> visits(kMutators, std::vector<std::uint64_t>(kObjects));
  std::vector<std::thread> mutators;
  for (unsigned m = 0; m < kMutators; ++m) {
    mutators.emplace_back([&, m] {
      auto a = faultline::attach_thread();
      Object* p = &objects[m * (kObjects / kMutators)];
      std::uint64_t round = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        // Now and then read the identity first through an address no register holds as a pointer
        // (base 0, the object in the index register): heal() cannot prove which register to move, so
        // the barrier emulates the load against the new copy.
        std::uint64_t first = 0;
        const bool indirect = (++round & 7) == 0;
        if (indirect) {
          const std::uint64_t zero = 0;
#if defined(__x86_64__)
          asm volatile("movq (%1,%2,1), %0" : "=r"(first) : "r"(zero), "r"(p) : "memory");
#elif defined(__aarch64__)
          asm volatile("ldr %0, [%1, %2]" : "=r"(first) : "r"(zero), "r"(p) : "memory");
#endif
        }
        const std::uint64_t id = p->id;
        if (indirect && first != id) wrong_identity++;
        const std::size_t index = (id - 1) / 7919;
        if (index >= kObjects || (id - 1) % 7919 != 0) {
          wrong_identity++;
          return;
        }
        p->count.fetch_add(1, std::memory_order_relaxed);
        visits[m][index]++;
        p = p->next;  // an old-space pointer: the next access through it may trap and be healed
      }
    });
  }
  // The collector: page by page, protect, copy, publish.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  for (std::size_t pg = 0; pg < pages; ++pg) {
    if (!old_space->protect(pg, 1, faultline::perm_none)) return 1;
    // Once mprotect has returned no mutator can write the page any more: copy it through the
    // collector's own view.
    std::memcpy(reinterpret_cast<void*>(g_new + pg * g_page), static_cast<const char*>(collector_view) + pg * g_page,
                g_page);
    forwarded[pg].store(1, std::memory_order_release);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  stop = true;
  for (auto& t : mutators) t.join();

  const auto* moved = reinterpret_cast<const Object*>(g_new);
  std::size_t bad = 0;
  for (std::size_t i = 0; i < kObjects; ++i) {
    std::uint64_t expected = 0;
    for (unsigned m = 0; m < kMutators; ++m) expected += visits[m][i];
    if (moved[i].count.load() != expected || moved[i].id != i * 7919 + 1) ++bad;
  }
  std::printf("relocated %zu objects on %zu pages; faults healed %llu, emulated %llu, declined %llu; "
              "objects inconsistent %zu, wrong identities %u\n",
              kObjects, pages, static_cast<unsigned long long>(g_healed.load()),
              static_cast<unsigned long long>(g_emulated.load()), static_cast<unsigned long long>(g_declined.load()),
              bad, wrong_identity.load());
  // The demo's own checks: each failure is named, and any makes the exit status 1.
  int failed = 0;
  const auto check = [&](bool ok, const char* what) {
    if (!ok) {
      std::fprintf(stderr, "relocation: check failed: %s\n", what);
      failed = 1;
    }
  };
  check(bad == 0, "every object's counter holds every increment made to it");
  check(wrong_identity.load() == 0, "every object read had its own identity");
  check(g_declined.load() == 0, "the barrier declined no fault");
  check(g_healed.load() > 0, "at least one fault was healed");
  return failed;
}
