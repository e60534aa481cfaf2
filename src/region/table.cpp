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
  if (l.n % kLineEntries == 0) l.line_first[l.n / kLineEntries] = e.base;
  l.base[l.n] = e.base;
  l.end[l.n] = e.end;
  l.r[l.n] = e.r;
  ++l.n;
}

std::uint64_t g_generation = 0;  // the last generation given (under g_mutex)

// Waits until no reader can see what the last change replaced. Readers hold the table's epoch only for
// a lookup, so the wait is short; it is still bounded (10 s, then false: what was replaced is leaked
// rather than freed under a reader, and the change stands).
bool wait_for_readers() {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  unsigned spins = 0;
  return g_epoch.synchronize([&] {
    if (++spins < 1000) {
      sched_yield();
      return true;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(100));
    return std::chrono::steady_clock::now() < deadline;
  });
}

// Publishes `next` (a new top array), waits out the readers, then frees the old one and `retired`.
void publish(std::unique_ptr<Top> next, const Leaf* retired) {
  next->generation.store(++g_generation, std::memory_order_relaxed);
  const Top* old = g_top.exchange(next.release(), std::memory_order_acq_rel);
  if (!wait_for_readers()) return;  // leak: a reader that never left (it cannot happen short of a bug)
  delete old;
  delete retired;
}

// Replaces leaf `li` of the published `top` in place (the number of leaves is unchanged), waits out the
// readers, then frees the old leaf.
void replace_leaf(const Top* top, std::size_t li, const Leaf* leaf) {
  const Leaf* old = top->leaf[li];
  __atomic_store_n(const_cast<const Leaf**>(&top->leaf[li]), leaf, __ATOMIC_RELEASE);
  // The leaf first, then the generation (release): a reader that sees the new generation sees the new
  // leaf; one that saw the old generation remembers nothing past it.
  const_cast<Top*>(top)->generation.store(++g_generation, std::memory_order_release);
  if (!wait_for_readers()) return;
  delete old;
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
  // regions one by one costs O(n log n), not O(n^2). The separators are not bases: the leaf they point
  // to may hold no base below `end`, and then the candidate is the last entry of the leaf before it.
  const Top* top = g_top.load(std::memory_order_acquire);
  if (top == nullptr || top->first.empty() || end == 0) return nullptr;
  auto lit = std::upper_bound(top->first.begin(), top->first.end(), end - 1);
  std::size_t li = lit == top->first.begin() ? 0 : static_cast<std::size_t>(lit - top->first.begin()) - 1;
  const Leaf* leaf = top->leaf[li];
  const std::uintptr_t* bit = std::upper_bound(leaf->base, leaf->base + leaf->n, end - 1);
  if (bit == leaf->base) {
    if (li == 0) return nullptr;  // every region starts at or after end
    leaf = top->leaf[--li];
    bit = leaf->base + leaf->n;
  }
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
  const Entry entry{r->base, r->end, r};
  if (top == nullptr || top->leaf.empty()) {
    auto next = std::make_unique<Top>();
    auto leaf = std::make_unique<Leaf>();
    push(*leaf, entry);
    next->leaf.push_back(leaf.get());
    next->first.push_back(entry.base);
    leaf.release();
    publish(std::move(next), nullptr);
    ++g_count;
    return {};
  }
  // The leaf that should hold it: the last whose separator <= base (or the first leaf).
  auto it = std::upper_bound(top->first.begin(), top->first.end(), entry.base);
  const std::size_t li = it == top->first.begin() ? 0 : static_cast<std::size_t>(it - top->first.begin()) - 1;
  const Leaf* old_leaf = top->leaf[li];
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
  if (n <= kLeafCap) {  // the leaf, replaced in place: the top array stays
    auto leaf = std::make_unique<Leaf>();
    for (std::size_t i = 0; i < n; ++i) push(*leaf, tmp[i]);
    replace_leaf(top, li, leaf.release());
    ++g_count;
    return {};
  }
  // Split in two halves: a new top array. The first half keeps the leaf's separator.
  auto next = std::make_unique<Top>(*top);
  auto a = std::make_unique<Leaf>();
  auto b = std::make_unique<Leaf>();
  for (std::size_t i = 0; i < n; ++i) push(i < n / 2 ? *a : *b, tmp[i]);
  next->first.insert(next->first.begin() + static_cast<std::ptrdiff_t>(li) + 1, b->base[0]);
  next->leaf.insert(next->leaf.begin() + static_cast<std::ptrdiff_t>(li) + 1, b.get());
  next->leaf[li] = a.get();
  a.release();
  b.release();
  publish(std::move(next), old_leaf);
  ++g_count;
  return {};
} catch (const std::bad_alloc&) {
  return out_of_memory("register");
}

Result<void> erase(RegionImpl* r) try {
  if (os::inject::point(fault_injection::Op::alloc) != 0) return out_of_memory("unregister");
  const Top* top = g_top.load(std::memory_order_acquire);
  if (top == nullptr || top->leaf.empty()) return Error(Errc::not_found, "region not registered");
  auto it = std::upper_bound(top->first.begin(), top->first.end(), r->base);
  const std::size_t li = it == top->first.begin() ? 0 : static_cast<std::size_t>(it - top->first.begin()) - 1;
  const Leaf* old_leaf = top->leaf[li];
  auto leaf = std::make_unique<Leaf>();
  for (std::size_t i = 0; i < old_leaf->n; ++i) {
    if (old_leaf->r[i] != r) push(*leaf, entry_of(*old_leaf, i));
  }
  if (leaf->n == old_leaf->n) return Error(Errc::not_found, "region not registered");
  if (leaf->n != 0) {  // the leaf, replaced in place; its separator stays
    replace_leaf(top, li, leaf.release());
    --g_count;
    return {};
  }
  // The leaf is left empty: a new top array without it (its range goes to the leaf before it).
  auto next = std::make_unique<Top>(*top);
  next->leaf.erase(next->leaf.begin() + static_cast<std::ptrdiff_t>(li));
  next->first.erase(next->first.begin() + static_cast<std::ptrdiff_t>(li));
  publish(std::move(next), old_leaf);
  --g_count;
  return {};
} catch (const std::bad_alloc&) {
  return out_of_memory("unregister");
}

}  // namespace faultline::region
