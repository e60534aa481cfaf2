// region/table.cpp: the region table's writers (registering and unregistering). Not signal path.
#include "region/table.hpp"

#include <algorithm>
#include <memory>

#include "trap/dispatcher.hpp"

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

// Publishes `next`, waits until no fault handler can see the old version, then frees it. If the wait
// gives up, the old table is put back (no reader can see `next` any more once the wait for it ends,
// and it is freed then; until then it is leaked rather than freed under a reader).
Result<void> publish(std::unique_ptr<Top> next, const Leaf* retired, const Leaf* added_a, const Leaf* added_b) {
  const Top* old = g_top.exchange(next.get(), std::memory_order_acq_rel);
  if (auto r = trap::wait_for_dispatches("region table"); !r) {
    // A handler that started before the flip may still read `old`: keep it, and publish it again so
    // that the table is exactly as it was. `next` (and the leaves it added) is leaked: a reader that
    // started after the flip may hold it.
    g_top.store(old, std::memory_order_release);
    next.release();
    (void)added_a;
    (void)added_b;
    return r;
  }
  next.release();
  delete old;
  delete retired;
  return {};
}

}  // namespace

std::mutex& table_mutex() noexcept { return g_mutex; }
std::size_t count() noexcept { return g_count; }

const RegionImpl* find_overlap(std::uintptr_t base, std::uintptr_t end) {
  const Top* top = g_top.load(std::memory_order_acquire);
  if (top == nullptr) return nullptr;
  for (const Leaf* leaf : top->leaf) {  // writers only; O(n) is fine next to an mmap
    if (leaf->n == 0 || leaf->base[0] >= end) continue;
    for (std::size_t i = 0; i < leaf->n; ++i) {
      if (leaf->base[i] < end && base < leaf->end[i]) return leaf->r[i];
    }
  }
  return nullptr;
}

Result<void> insert(RegionImpl* r) {
  const Top* top = g_top.load(std::memory_order_acquire);
  auto next = std::make_unique<Top>();
  if (top != nullptr) *next = *top;
  const Entry entry{r->base, r->end, r};
  if (next->leaf.empty()) {
    auto leaf = std::make_unique<Leaf>();
    push(*leaf, entry);
    next->leaf.push_back(leaf.get());
    next->first.push_back(entry.base);
    const Leaf* added = leaf.release();
    auto p = publish(std::move(next), nullptr, added, nullptr);
    if (p) ++g_count;
    return p;
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
  const Leaf* added_a = nullptr;
  const Leaf* added_b = nullptr;
  if (n <= kLeafCap) {
    auto leaf = std::make_unique<Leaf>();
    for (std::size_t i = 0; i < n; ++i) push(*leaf, tmp[i]);
    next->leaf[li] = leaf.get();
    next->first[li] = leaf->base[0];
    added_a = leaf.release();
  } else {  // split in two halves
    auto a = std::make_unique<Leaf>();
    auto b = std::make_unique<Leaf>();
    for (std::size_t i = 0; i < n; ++i) push(i < n / 2 ? *a : *b, tmp[i]);
    next->first.insert(next->first.begin() + static_cast<std::ptrdiff_t>(li) + 1, b->base[0]);
    next->leaf.insert(next->leaf.begin() + static_cast<std::ptrdiff_t>(li) + 1, b.get());
    next->leaf[li] = a.get();
    next->first[li] = a->base[0];
    added_a = a.release();
    added_b = b.release();
  }
  auto p = publish(std::move(next), old_leaf, added_a, added_b);
  if (p) ++g_count;
  return p;
}

Result<void> erase(RegionImpl* r) {
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
  const Leaf* added = nullptr;
  if (leaf->n == 0) {
    next->leaf.erase(next->leaf.begin() + static_cast<std::ptrdiff_t>(li));
    next->first.erase(next->first.begin() + static_cast<std::ptrdiff_t>(li));
  } else {
    next->leaf[li] = leaf.get();
    next->first[li] = leaf->base[0];
    added = leaf.release();
  }
  auto p = publish(std::move(next), old_leaf, added, nullptr);
  if (p) --g_count;
  return p;
}

}  // namespace faultline::region
