// region/table.cpp: the region table's writers (registering and unregistering). Not signal path.
#include "region/table.hpp"

#include <algorithm>
#include <memory>

#include <sched.h>

#include <chrono>
#include <new>
#include <string>
#include <thread>

#include "os/linux/fork_hooks.hpp"
#include "os/linux/inject.hpp"

namespace faultline::region {

namespace {

using detail::RegionImpl;

std::mutex g_mutex;  // serialises writers of the table
std::size_t g_count = 0;

struct Entry {
  std::uintptr_t base, end;
  RegionImpl* r;
};

Entry entry_of(const Leaf& l, std::size_t i) noexcept { return Entry{l.base[i], l.end[i], l.r[i]}; }
void push(Leaf& l, const Entry& e) noexcept {
  l.base[l.n] = e.base;
  l.end[l.n] = e.end;
  l.r[l.n] = e.r;
  ++l.n;
}

// Publishes `next`, waits until no reader can see the old version, then frees it. Readers hold the
// table's epoch only for a lookup, so the wait is short; it is still bounded (10 s, then the old version
// is leaked rather than freed under a reader, and the change stands).
void publish(std::unique_ptr<Top> next, const Leaf* retired) {
  static std::uint64_t generation = 0;  // under g_mutex
  next->generation = ++generation;
  const Top* old = g_top.exchange(next.release(), std::memory_order_acq_rel);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  unsigned spins = 0;
  const bool drained = g_epoch.synchronize([&] {
    if (++spins < 1000) {
      sched_yield();
      return true;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(100));
    return std::chrono::steady_clock::now() < deadline;
  });
  if (!drained) return;  // leak: a reader that never left (it cannot happen short of a bug)
  delete old;
  delete retired;
}

void lock_for_fork() { g_mutex.lock(); }
void unlock_after_fork() { g_mutex.unlock(); }

// The child: no other thread exists, so no lookup is in progress and the pins the parent's threads held
// are not the child's to wait for. Each region adapts itself (see "Fork" in faultline/region.hpp).
void child_after_fork() {
  g_epoch.reset_after_fork(-1);
  if (const Top* top = g_top.load(std::memory_order_acquire); top != nullptr) {
    for (const Leaf* leaf : top->leaf) {
      for (std::size_t i = 0; i < leaf->n; ++i) {
        RegionImpl* r = leaf->r[i];
        r->inherited_pins = r->inflight.load(std::memory_order_acquire);
        r->inherited.store(true, std::memory_order_release);
        r->after_fork_in_child();
      }
    }
  }
  g_mutex.unlock();
}

}  // namespace

std::mutex& table_mutex() noexcept { return g_mutex; }

void register_fork_hooks() noexcept {
  os::fork_hooks::add({os::fork_hooks::kRegionTable, lock_for_fork, unlock_after_fork, child_after_fork});
}
std::size_t count() noexcept { return g_count; }

const RegionImpl* find_overlap(std::uintptr_t base, std::uintptr_t end) {
  // Registered regions are disjoint and sorted by base, so their ends are sorted too: the only
  // candidate is the region with the greatest base below `end`. Two binary searches, so adopting n
  // regions one by one costs O(n log n), not O(n^2).
  const Top* top = g_top.load(std::memory_order_acquire);
  if (top == nullptr || top->first.empty() || end == 0) return nullptr;
  auto lit = std::upper_bound(top->first.begin(), top->first.end(), end - 1);
  if (lit == top->first.begin()) return nullptr;  // every region starts at or after end
  const Leaf* leaf = top->leaf[static_cast<std::size_t>(lit - top->first.begin()) - 1];
  const std::uintptr_t* bit = std::upper_bound(leaf->base, leaf->base + leaf->n, end - 1);
  if (bit == leaf->base) return nullptr;
  const std::size_t i = static_cast<std::size_t>(bit - leaf->base) - 1;
  return leaf->end[i] > base ? leaf->r[i] : nullptr;
}

namespace {

Result<void> out_of_memory(const char* what) {
  return Error(Errc::no_space, std::string("region table: out of memory to ") + what + " a region");
}

}  // namespace

Result<void> insert(RegionImpl* r) try {
  if (os::inject::point(fault_injection::Op::alloc) != 0) return out_of_memory("register");
  const Top* top = g_top.load(std::memory_order_acquire);
  auto next = std::make_unique<Top>();
  if (top != nullptr) *next = *top;
  const Entry entry{r->base, r->end, r};
  if (next->leaf.empty()) {
    auto leaf = std::make_unique<Leaf>();
    push(*leaf, entry);
    next->leaf.push_back(leaf.get());
    next->first.push_back(entry.base);
    leaf.release();
    publish(std::move(next), nullptr);
    ++g_count;
    return {};
  }
  // The leaf that should hold it: the last whose first base <= base (or the first leaf).
  auto it = std::upper_bound(next->first.begin(), next->first.end(), entry.base);
  std::size_t li = it == next->first.begin() ? 0 : static_cast<std::size_t>(it - next->first.begin()) - 1;
  const Leaf* old_leaf = next->leaf[li];
  Entry tmp[kLeafCap + 1];
  std::size_t n = 0;
  bool placed = false;
  for (std::size_t i = 0; i < old_leaf->n; ++i) {
    if (!placed && entry.base < old_leaf->base[i]) {
      tmp[n++] = entry;
      placed = true;
    }
    tmp[n++] = entry_of(*old_leaf, i);
  }
  if (!placed) tmp[n++] = entry;
  if (n <= kLeafCap) {
    auto leaf = std::make_unique<Leaf>();
    for (std::size_t i = 0; i < n; ++i) push(*leaf, tmp[i]);
    next->leaf[li] = leaf.get();
    next->first[li] = leaf->base[0];
    leaf.release();
  } else {  // split in two halves
    auto a = std::make_unique<Leaf>();
    auto b = std::make_unique<Leaf>();
    for (std::size_t i = 0; i < n; ++i) push(i < n / 2 ? *a : *b, tmp[i]);
    next->first.insert(next->first.begin() + static_cast<std::ptrdiff_t>(li) + 1, b->base[0]);
    next->leaf.insert(next->leaf.begin() + static_cast<std::ptrdiff_t>(li) + 1, b.get());
    next->leaf[li] = a.get();
    next->first[li] = a->base[0];
    a.release();
    b.release();
  }
  publish(std::move(next), old_leaf);
  ++g_count;
  return {};
} catch (const std::bad_alloc&) {
  return out_of_memory("register");
}

Result<void> erase(RegionImpl* r) try {
  if (os::inject::point(fault_injection::Op::alloc) != 0) return out_of_memory("unregister");
  const Top* top = g_top.load(std::memory_order_acquire);
  if (top == nullptr) return Error(Errc::not_found, "region not registered");
  auto next = std::make_unique<Top>(*top);
  auto it = std::upper_bound(next->first.begin(), next->first.end(), r->base);
  if (it == next->first.begin()) return Error(Errc::not_found, "region not registered");
  std::size_t li = static_cast<std::size_t>(it - next->first.begin()) - 1;
  const Leaf* old_leaf = next->leaf[li];
  auto leaf = std::make_unique<Leaf>();
  for (std::size_t i = 0; i < old_leaf->n; ++i) {
    if (old_leaf->r[i] != r) push(*leaf, entry_of(*old_leaf, i));
  }
  if (leaf->n == old_leaf->n) return Error(Errc::not_found, "region not registered");
  if (leaf->n == 0) {
    next->leaf.erase(next->leaf.begin() + static_cast<std::ptrdiff_t>(li));
    next->first.erase(next->first.begin() + static_cast<std::ptrdiff_t>(li));
  } else {
    next->leaf[li] = leaf.get();
    next->first[li] = leaf->base[0];
    leaf.release();
  }
  publish(std::move(next), old_leaf);
  --g_count;
  return {};
} catch (const std::bad_alloc&) {
  return out_of_memory("unregister");
}

}  // namespace faultline::region
