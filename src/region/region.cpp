// region/region.cpp: registering, unregistering and collecting regions. Not signal path.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <thread>
#include <cstring>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>

#include "core/page.hpp"
#include "faultline/region.hpp"
#include "region/fill.hpp"
#include "region/table.hpp"
#include "os/linux/uffd.hpp"
#include "region/remote.hpp"
#include "region/uffd.hpp"
#include "trap/dispatcher.hpp"

namespace faultline {

namespace {

using detail::RegionImpl;
using region::Entry;
using region::g_top;
using region::kLeafCap;
using region::Leaf;
using region::Top;

std::mutex g_mutex;  // serialises writers of the table
std::size_t g_count = 0;
bool g_handler_added = false;

std::string hex(std::uintptr_t v) {
  char b[32];
  std::snprintf(b, sizeof b, "0x%lx", static_cast<unsigned long>(v));
  return b;
}
std::string range_text(std::uintptr_t base, std::size_t size) { return "[" + hex(base) + ", +" + hex(size) + ")"; }

// Publishes `next`, waits until no fault handler can see the old version, then frees it.
Result<void> publish(Top* next, const Leaf* retired_leaf_a, const Leaf* retired_leaf_b) {
  const Top* old = g_top.exchange(next, std::memory_order_acq_rel);
  auto r = trap::wait_for_dispatches("region table");
  if (!r) return r;  // leak rather than free what a handler may still use
  delete old;
  delete retired_leaf_a;
  delete retired_leaf_b;
  return {};
}

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
    auto* leaf = new Leaf();
    leaf->push(entry);
    next->leaf.push_back(leaf);
    next->first.push_back(entry.base);
    return publish(next.release(), nullptr, nullptr);
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
    tmp[n++] = old_leaf->entry(i);
  }
  if (!placed) tmp[n++] = entry;
  if (n <= kLeafCap) {
    auto* leaf = new Leaf();
    for (std::size_t i = 0; i < n; ++i) leaf->push(tmp[i]);
    next->leaf[li] = leaf;
    next->first[li] = leaf->base[0];
  } else {  // split in two halves
    auto* a = new Leaf();
    auto* b = new Leaf();
    for (std::size_t i = 0; i < n; ++i) (i < n / 2 ? a : b)->push(tmp[i]);
    next->leaf[li] = a;
    next->first[li] = a->base[0];
    next->leaf.insert(next->leaf.begin() + static_cast<std::ptrdiff_t>(li) + 1, b);
    next->first.insert(next->first.begin() + static_cast<std::ptrdiff_t>(li) + 1, b->base[0]);
  }
  return publish(next.release(), old_leaf, nullptr);
}

Result<void> erase(RegionImpl* r) {
  const Top* top = g_top.load(std::memory_order_acquire);
  if (top == nullptr) return Error(Errc::not_found, "region not registered");
  auto next = std::make_unique<Top>(*top);
  auto it = std::upper_bound(next->first.begin(), next->first.end(), r->base);
  if (it == next->first.begin()) return Error(Errc::not_found, "region not registered");
  std::size_t li = static_cast<std::size_t>(it - next->first.begin()) - 1;
  const Leaf* old_leaf = next->leaf[li];
  auto* leaf = new Leaf();
  for (std::size_t i = 0; i < old_leaf->n; ++i) {
    if (old_leaf->r[i] != r) leaf->push(old_leaf->entry(i));
  }
  if (leaf->n == old_leaf->n) {
    delete leaf;
    return Error(Errc::not_found, "region not registered");
  }
  if (leaf->n == 0) {
    delete leaf;
    next->leaf.erase(next->leaf.begin() + static_cast<std::ptrdiff_t>(li));
    next->first.erase(next->first.begin() + static_cast<std::ptrdiff_t>(li));
  } else {
    next->leaf[li] = leaf;
    next->first[li] = leaf->base[0];
  }
  return publish(next.release(), old_leaf, nullptr);
}

Result<void> validate(std::size_t size, const RegionOptions& o) {
  const std::size_t page = core::page_size();
  if (size == 0) return Error(Errc::invalid_argument, "region '" + o.name + "': size is zero");
  if (!core::is_aligned(size, page)) {
    return Error(Errc::invalid_argument, "region '" + o.name + "': size " + std::to_string(size) +
                                             " is not a multiple of the page size " + std::to_string(page));
  }
  if ((o.perms & ~static_cast<unsigned>(perm_read | perm_write | perm_exec)) != 0) {
    return Error(Errc::invalid_argument, "region '" + o.name + "': unknown permission bits");
  }
  if (o.policy != Policy::guard && o.policy != Policy::barrier && o.perms == perm_none) {
    return Error(Errc::invalid_argument, "region '" + o.name + "': a " + policy_name(o.policy) +
                                             " region needs at least one permission");
  }
  if (o.policy == Policy::track_writes && !(o.perms & perm_write)) {
    return Error(Errc::invalid_argument, "region '" + o.name + "': track_writes needs perm_write");
  }
  if (o.policy == Policy::barrier && o.barrier == nullptr) {
    return Error(Errc::invalid_argument, "region '" + o.name + "': the barrier policy needs a barrier function");
  }
  if (o.policy != Policy::barrier && o.barrier != nullptr) {
    return Error(Errc::invalid_argument, "region '" + o.name + "': a barrier function is only for Policy::barrier");
  }
  if (o.fault_around == 0 || o.fault_around > 512) {
    return Error(Errc::invalid_argument, "region '" + o.name + "': fault_around must be 1..512 pages");
  }
  const bool filled = o.policy == Policy::provider || o.policy == Policy::pager;
  if (o.max_resident_pages != 0 && o.policy != Policy::provider && o.policy != Policy::pager) {
    return Error(Errc::invalid_argument, "region '" + o.name + "': max_resident_pages is for provider and pager regions");
  }
  if (o.writeback != nullptr && o.policy != Policy::provider && o.policy != Policy::pager) {
    return Error(Errc::invalid_argument, "region '" + o.name + "': a writeback function is for provider and pager regions");
  }
  if (o.remote_pager_socket >= 0) {
    if (o.policy != Policy::pager || o.fill != nullptr || o.pager.valid() || o.backend == Backend::signals) {
      return Error(Errc::invalid_argument, "region '" + o.name + "': remote_pager_socket is for Policy::pager "
                                               "regions with neither a fill function nor a Pager, on userfaultfd");
    }
    return {};
  }
  if (filled && o.fill == nullptr) {
    return Error(Errc::invalid_argument, "region '" + o.name + "': the " + policy_name(o.policy) +
                                             " policy needs a fill function");
  }
  if (!filled && o.fill != nullptr) {
    return Error(Errc::invalid_argument, "region '" + o.name + "': a fill function is only for Policy::provider "
                                             "and Policy::pager");
  }
  if (o.policy == Policy::pager && !o.pager.valid()) {
    return Error(Errc::invalid_argument, "region '" + o.name + "': the pager policy needs a started Pager");
  }
  if (o.policy != Policy::pager && o.pager.valid()) {
    return Error(Errc::invalid_argument, "region '" + o.name + "': a Pager is only for Policy::pager");
  }
  if (o.readahead_max == 0 || o.readahead_max > 512) {
    return Error(Errc::invalid_argument, "region '" + o.name + "': readahead_max must be 1..512 pages");
  }
  if (o.fill_timeout < std::chrono::milliseconds(1) || o.fill_timeout > std::chrono::hours(1)) {
    return Error(Errc::invalid_argument, "region '" + o.name + "': fill_timeout must be 1 ms .. 1 hour");
  }
  return {};
}

// The protection a region's pages start with.
int initial_prot(const RegionImpl& r) {
  return r.policy == Policy::track_writes ? r.prot & ~PROT_WRITE : PROT_NONE;
}

Result<RegionImpl*> register_impl(std::unique_ptr<RegionImpl> r) {
  if (auto inst = install(); !inst) return std::move(inst).error();
  std::lock_guard lock(g_mutex);
  if (const RegionImpl* other = find_overlap(r->base, r->end)) {
    return Error(Errc::already_exists, "region '" + std::string(r->name) + "' " +
                                           range_text(r->base, r->end - r->base) + " overlaps region '" +
                                           other->name + "' " + range_text(other->base, other->end - other->base));
  }
  if (!g_handler_added) {
    // SIGSEGV for the signal backend; SIGBUS for self-service userfaultfd regions (and to name the
    // region in reports of poisoned pages).
    auto id = add_handler(region::handle_fault, nullptr, trap_memory, region::describe);
    if (!id) return std::move(id).error();
    g_handler_added = true;
  }
  if (r->alias != 0) {
    const std::size_t pages = (r->end - r->base) / core::page_size();
    r->pstate = new std::atomic<std::uint32_t>[pages];
    for (std::size_t i = 0; i < pages; ++i) r->pstate[i].store(region::kPageEmpty, std::memory_order_relaxed);
  }
  if (r->policy == Policy::track_writes) {
    r->dirty_words = ((r->end - r->base) / core::page_size() + 63) / 64;
    r->dirty = new std::atomic<std::uint64_t>[r->dirty_words];
    for (std::size_t i = 0; i < r->dirty_words; ++i) r->dirty[i].store(0, std::memory_order_relaxed);
  }
  if (r->backend == Backend::userfaultfd && r->remote_sock >= 0) {
    if (auto a = region::remote::attach(*r, r->remote_sock); !a) return a.error();
  } else if (r->backend == Backend::userfaultfd) {
    if (auto a = region::uffd::attach(*r); !a) return a.error();
  } else if (mprotect(reinterpret_cast<void*>(r->base), r->end - r->base, initial_prot(*r)) != 0) {
    return Error::from_errno("mprotect (region)", errno);
  }
  RegionImpl* raw = r.release();
  if (auto ins = insert(raw); !ins) return std::move(ins).error();
  ++g_count;
  return raw;
}

std::unique_ptr<RegionImpl> make_impl(std::uintptr_t base, std::size_t size, const RegionOptions& o, bool owned) {
  auto r = std::make_unique<RegionImpl>();
  r->base = base;
  r->end = base + size;
  r->policy = o.policy;
  r->perms = o.perms;
  r->prot = region::prot_of(o.perms);
  r->fault_around = o.fault_around;
  r->barrier = o.barrier;
  r->barrier_data = o.barrier_data;
  r->fill = o.fill;
  r->fill_data = o.fill_data;
  r->pager = detail::impl_of(o.pager);
  r->fill_timeout_ms = static_cast<std::uint32_t>(o.fill_timeout.count());
  r->uffd_mode = o.uffd_mode;
  r->write_tracking = o.write_tracking;
  r->writeback = o.writeback;
  if (o.max_resident_pages != 0) {
    r->evict = std::make_unique<detail::EvictState>();
    r->evict->max_resident = o.max_resident_pages;
  }
  r->writeback_data = o.writeback_data;
  r->readahead_max = o.readahead_max;
  r->ra_window.store(static_cast<std::uint32_t>(o.fault_around));
  std::snprintf(r->name, sizeof r->name, "%s", o.name.c_str());
  r->owned = owned;
  return r;
}

// Provider and pager regions: one memfd mapped twice, the region's view (PROT_NONE until filled) and
// a private read-write alias that fills write through. Returns {view, alias}.
Result<std::pair<void*, void*>> map_filled(std::size_t size, const RegionOptions& opts) {
  std::string label = "faultline:" + opts.name;
  int fd = memfd_create(label.c_str(), MFD_CLOEXEC);
  if (fd < 0) return Error::from_errno("memfd_create (filled region)", errno);
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
    int e = errno;
    close(fd);
    return Error::from_errno("ftruncate (memfd of a filled region)", e);
  }
  void* view = mmap(nullptr, size, PROT_NONE, MAP_SHARED | MAP_NORESERVE, fd, 0);
  void* alias = view == MAP_FAILED ? MAP_FAILED
                                   : mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
  int e = errno;
  close(fd);  // the mappings keep the memory
  if (alias == MAP_FAILED) {
    if (view != MAP_FAILED) munmap(view, size);
    return Error::from_errno("mmap (memfd of a filled region)", e);
  }
  return std::pair<void*, void*>{view, alias};
}

}  // namespace

Result<Region> reserve_region(std::size_t size, const RegionOptions& opts) {
  if (auto v = validate(size, opts); !v) return std::move(v).error();
  std::string reason;
  const Backend backend = region::uffd::choose(opts, false, &reason);
  if (backend == Backend::automatic) {
    return Error(Errc::unsupported, "region '" + opts.name + "': Backend::userfaultfd requested, but " + reason);
  }
  if ((opts.writeback != nullptr || opts.max_resident_pages != 0) &&
      (backend != Backend::userfaultfd || opts.uffd_mode != UffdMode::handler_thread)) {
    return Error(Errc::unsupported, "region '" + opts.name + "': write-back and max_resident_pages need the "
                                        "userfaultfd backend with its handler thread (" + reason + ")");
  }
  void* p = nullptr;
  void* alias = nullptr;
  if (backend == Backend::userfaultfd) {
    // Private anonymous memory with the region's own protection; missing pages reach userfaultfd.
    p = mmap(nullptr, size, region::prot_of(opts.perms), MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return Error::from_errno("mmap (reserve_region)", errno);
  } else if (opts.policy == Policy::provider || opts.policy == Policy::pager) {
    auto m = map_filled(size, opts);
    if (!m) return std::move(m).error();
    p = m.value().first;
    alias = m.value().second;
  } else {
    p = mmap(nullptr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return Error::from_errno("mmap (reserve_region)", errno);
  }
  auto impl = make_impl(reinterpret_cast<std::uintptr_t>(p), size, opts, true);
  impl->alias = reinterpret_cast<std::uintptr_t>(alias);
  impl->backend = backend;
  impl->remote_sock = opts.remote_pager_socket;
  std::snprintf(impl->backend_reason, sizeof impl->backend_reason, "%s", reason.c_str());
  auto r = register_impl(std::move(impl));
  if (!r) {
    munmap(p, size);
    if (alias != nullptr) munmap(alias, size);
    return std::move(r).error();
  }
  return Region(r.value());
}

Result<Region> adopt_region(void* addr, std::size_t size, const RegionOptions& opts) {
  if (addr == nullptr) return Error(Errc::invalid_argument, "adopt_region '" + opts.name + "': address is null");
  if (auto v = validate(size, opts); !v) return std::move(v).error();
  if (opts.policy == Policy::provider || opts.policy == Policy::pager) {
    return Error(Errc::unsupported, "adopt_region '" + opts.name + "': the " + policy_name(opts.policy) +
                                        " policy fills pages through a private alias of memory faultline maps "
                                        "itself; use reserve_region");
  }
  const auto base = reinterpret_cast<std::uintptr_t>(addr);
  if (!core::is_aligned(base, core::page_size())) {
    return Error(Errc::invalid_argument, "adopt_region '" + opts.name + "': address " + hex(base) +
                                             " is not page-aligned");
  }
  // Every page must be mapped: mincore fails with ENOMEM on a hole.
  std::vector<unsigned char> vec(size / core::page_size());
  if (mincore(addr, size, vec.data()) != 0) {
    return Error(Errc::invalid_argument, "adopt_region '" + opts.name + "': " + range_text(base, size) +
                                             " is not entirely mapped");
  }
  if (opts.backend == Backend::userfaultfd) {
    return Error(Errc::unsupported, "adopt_region '" + opts.name + "': adopted memory is served by the signal backend");
  }
  if (opts.policy == Policy::zero_fill) madvise(addr, size, MADV_DONTNEED);
  auto impl = make_impl(base, size, opts, false);
  std::snprintf(impl->backend_reason, sizeof impl->backend_reason, "%s",
                opts.backend == Backend::signals ? "signals (requested)" : "signals: adopted memory");
  auto r = register_impl(std::move(impl));
  if (!r) return std::move(r).error();
  return Region(r.value());
}

Region& Region::operator=(Region&& o) noexcept {
  if (this != &o) {
    (void)reset();
    impl_ = o.impl_;
    o.impl_ = nullptr;
  }
  return *this;
}

void* Region::data() const noexcept { return impl_ ? reinterpret_cast<void*>(impl_->base) : nullptr; }
std::size_t Region::size() const noexcept { return impl_ ? impl_->end - impl_->base : 0; }
Backend Region::backend() const noexcept { return impl_ ? impl_->backend : Backend::signals; }
const char* Region::backend_reason() const noexcept { return impl_ ? impl_->backend_reason : ""; }

RegionInfo Region::info() const noexcept {
  if (impl_ == nullptr) return RegionInfo{"", 0, 0, Policy::guard, 0};
  return RegionInfo{impl_->name, impl_->base, impl_->end - impl_->base, impl_->policy, impl_->perms};
}

Result<void> Region::reset() {
  if (impl_ == nullptr) return {};
  if (in_handler()) return Error(Errc::busy, "Region::reset: called from inside a fault handler");
  std::lock_guard lock(g_mutex);
  if (auto e = erase(impl_); !e) return e;
  --g_count;
  region::remote::stop(*impl_);
  // A pager request abandoned by its faulting thread may still be running the fill function (or the
  // remote pager's watchdog is ending).
  for (int i = 0; impl_->inflight.load(std::memory_order_acquire) != 0; ++i) {
    if (i == 10000) {
      impl_ = nullptr;  // leak the region rather than free what a pager thread still uses
      return Error(Errc::timed_out, "Region::reset: a pager request for this region did not finish in 10 s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  region::uffd::detach(*impl_);
  if (impl_->owned) munmap(reinterpret_cast<void*>(impl_->base), impl_->end - impl_->base);
  if (impl_->alias != 0) munmap(reinterpret_cast<void*>(impl_->alias), impl_->end - impl_->base);
  delete impl_;
  impl_ = nullptr;
  return {};
}

Result<std::vector<std::size_t>> Region::collect_dirty(ProtectBatch* defer) {
  if (impl_ == nullptr) return Error(Errc::invalid_argument, "collect_dirty: empty region handle");
  if (impl_->policy != Policy::track_writes) {
    return Error(Errc::invalid_argument, std::string("collect_dirty: region '") + impl_->name + "' has policy " +
                                             policy_name(impl_->policy) + ", not track_writes");
  }
  const std::size_t page = core::page_size();
  std::vector<std::size_t> pages;
  if (impl_->backend == Backend::userfaultfd && impl_->write_tracking == WriteTracking::async_wp) {
    // Harvest and re-arm in one ioctl; nothing to defer.
    if (auto c = region::uffd::collect_written(*impl_, &pages); !c) return c.error();
    return pages;
  }
  // Take the marks first, then re-protect what they name (see track_write in signal_policy.cpp).
  for (std::size_t w = 0; w < impl_->dirty_words; ++w) {
    std::uint64_t bits = impl_->dirty[w].exchange(0, std::memory_order_acq_rel);
    while (bits != 0) {
      unsigned b = static_cast<unsigned>(__builtin_ctzll(bits));
      pages.push_back(w * 64 + b);
      bits &= bits - 1;
    }
  }
  const int ro = impl_->prot & ~PROT_WRITE;
  for (std::size_t i = 0; i < pages.size();) {  // one mprotect per run of adjacent pages
    std::size_t j = i + 1;
    while (j < pages.size() && pages[j] == pages[j - 1] + 1) ++j;
    if (impl_->backend == Backend::userfaultfd) {  // synchronous write-protect: re-arm the run
      if (os::is_err(os::uffd_writeprotect(impl_->uffd, impl_->base + pages[i] * page, (j - i) * page, true))) {
        return Error::from_errno("UFFDIO_WRITEPROTECT (collect_dirty)", errno);
      }
    } else if (defer != nullptr) {
      defer->ops_.push_back(ProtectBatch::Op{impl_->base + pages[i] * page, (j - i) * page, ro});
    } else if (mprotect(reinterpret_cast<void*>(impl_->base + pages[i] * page), (j - i) * page, ro) != 0) {
      return Error::from_errno("mprotect (collect_dirty)", errno);
    }
    i = j;
  }
  return pages;
}

Result<void> prefault(const void* addr, std::size_t len, Access access) {
  if (addr == nullptr || len == 0) return Error(Errc::invalid_argument, "prefault: empty range");
  const std::size_t page = core::page_size();
  std::uintptr_t p = core::align_down(reinterpret_cast<std::uintptr_t>(addr), page);
  const std::uintptr_t end = reinterpret_cast<std::uintptr_t>(addr) + len;
  // Touch each page the way the system call will; faults are resolved by the regions' policies. A
  // region's own rules apply: a forbidden access is refused here rather than crashing.
  for (; p < end; p += page) {
    const RegionImpl* r = nullptr;
    {
      std::lock_guard lock(g_mutex);
      r = region::lookup(p);
      if (r != nullptr) {
        const bool ok = access == Access::write ? (r->perms & perm_write) : (r->perms & perm_read);
        if (!ok || r->policy == Policy::guard) {
          return Error(Errc::invalid_argument, std::string("prefault: region '") + r->name + "' does not allow " +
                                                   access_name(access) + " at " + hex(p));
        }
      }
    }
    if (r == nullptr) continue;
    if (access == Access::write) {
      __atomic_fetch_add(reinterpret_cast<volatile char*>(p), 0, __ATOMIC_RELAXED);  // write without changing
    } else {
      (void)*reinterpret_cast<const volatile char*>(p);
    }
  }
  return {};
}

std::size_t region_count() {
  std::lock_guard lock(g_mutex);
  return g_count;
}

}  // namespace faultline
