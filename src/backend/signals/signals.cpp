// backend/signals/signals.cpp: the signal backend's regions: mapping, protecting, collecting dirty pages,
// discarding, serving pager requests, and protection batches. Not signal path (the fault handling is in
// signals_sig.cpp).
#include "core/guard.hpp"
#include "backend/signals/signals.hpp"

#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <string>
#include <thread>

#include "backend/monitor.hpp"
#include "core/page.hpp"
#include "os/linux/maps.hpp"
#include "os/linux/syscall.hpp"
#include "pager/pager.hpp"
#include "region/table.hpp"

namespace faultline::backend::signals {

SignalRegion::SignalRegion(const RegionOptions& o, std::uintptr_t region_base, std::size_t size, bool is_owned,
                           std::uintptr_t alias_view)
    : RegionImpl(o, region_base, size, is_owned), alias(alias_view) {
  if (policy == Policy::track_dirty) dirty = detail::PageBits(pages());
  // The coarse window: a power of two, at least 2 MiB and at least 1/4096 of the region.
  coarse_window = std::uintptr_t{2} << 20;
  while (coarse_window < size / 4096) coarse_window <<= 1;
  if (alias != 0) {
    pstate = std::make_unique<std::atomic<std::uint32_t>[]>(pages());
    for (std::size_t i = 0; i < pages(); ++i) pstate[i].store(kPageEmpty, std::memory_order_relaxed);
  }
}

SignalRegion::~SignalRegion() = default;

namespace {

// The protection a region's pages start with.
int initial_prot(const detail::RegionImpl& r) {
  return r.policy == Policy::track_dirty ? r.prot & ~PROT_WRITE : PROT_NONE;
}

// Provider and pager regions: one memfd mapped twice, the region's view (PROT_NONE until filled) and a
// private read-write alias that fills write through. Returns {view, alias}.
Result<std::pair<void*, void*>> map_filled(std::size_t size, const RegionOptions& opts, std::uint64_t* inode) {
  std::string label = "faultline:" + opts.name;
  const long fd = os::raw_memfd_create(label.c_str(), MFD_CLOEXEC);
  if (os::is_err(fd)) return Error::from_errno("memfd_create (filled region)", static_cast<int>(-fd));
  if (const long rc = os::raw_ftruncate(static_cast<int>(fd), static_cast<long>(size)); os::is_err(rc)) {
    os::raw_close(static_cast<int>(fd));
    return Error::from_errno("ftruncate (memfd of a filled region)", static_cast<int>(-rc));
  }
  const long view = os::raw_mmap(nullptr, size, PROT_NONE, MAP_SHARED | MAP_NORESERVE, static_cast<int>(fd), 0);
  const long alias = os::is_err(view) ? view
                                      : os::raw_mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
                                                     static_cast<int>(fd), 0);
  struct stat st {};
  const long fst = os::raw_syscall(SYS_fstat, fd, reinterpret_cast<long>(&st));
  os::raw_close(static_cast<int>(fd));  // the mappings keep the memory
  if (!os::is_err(alias) && os::is_err(fst)) {
    os::raw_munmap(reinterpret_cast<void*>(alias), size);
    os::raw_munmap(reinterpret_cast<void*>(view), size);
    return Error::from_errno("fstat (memfd of a filled region)", static_cast<int>(-fst));
  }
  *inode = st.st_ino;
  if (os::is_err(alias)) {
    if (!os::is_err(view)) os::raw_munmap(reinterpret_cast<void*>(view), size);
    return Error::from_errno("mmap (memfd of a filled region)", static_cast<int>(-alias));
  }
  return std::pair<void*, void*>{reinterpret_cast<void*>(view), reinterpret_cast<void*>(alias)};
}

}  // namespace

Result<std::unique_ptr<detail::RegionImpl>> create(std::size_t size, const RegionOptions& o) {
  void* view = nullptr;
  void* alias = nullptr;
  std::uint64_t inode = 0;
  if (o.policy == Policy::provider || o.policy == Policy::pager) {
    auto m = map_filled(size, o, &inode);
    if (!m) return std::move(m).error();
    view = m.value().first;
    alias = m.value().second;
  } else if (o.huge_pages) {
    // 2 MiB-aligned: map 2 MiB more, keep the aligned part.
    const std::size_t huge = core::kHugePage;
    const long m = os::raw_mmap(nullptr, size + huge, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (os::is_err(m)) return Error::from_errno("mmap (reserve_region)", static_cast<int>(-m));
    const std::uintptr_t start = static_cast<std::uintptr_t>(m), aligned = (start + huge - 1) & ~(huge - 1);
    if (aligned > start) os::raw_munmap(reinterpret_cast<void*>(start), aligned - start);
    if (start + size + huge > aligned + size) {
      os::raw_munmap(reinterpret_cast<void*>(aligned + size), start + size + huge - (aligned + size));
    }
    view = reinterpret_cast<void*>(aligned);
    if (const long rc = os::raw_madvise(view, size, MADV_HUGEPAGE); os::is_err(rc)) {
      os::raw_munmap(view, size);
      return Error::from_errno("madvise MADV_HUGEPAGE (huge_pages)", static_cast<int>(-rc));
    }
  } else {
    const long m = os::raw_mmap(nullptr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (os::is_err(m)) return Error::from_errno("mmap (reserve_region)", static_cast<int>(-m));
    view = reinterpret_cast<void*>(m);
  }
  auto r = std::make_unique<SignalRegion>(o, reinterpret_cast<std::uintptr_t>(view), size, true,
                                          reinterpret_cast<std::uintptr_t>(alias));
  if (o.huge_pages) r->huge = core::kHugePage;
  r->memfd_inode = inode;
  return std::unique_ptr<detail::RegionImpl>(std::move(r));
}

std::unique_ptr<detail::RegionImpl> adopt(void* addr, std::size_t size, const RegionOptions& o) {
  return std::make_unique<SignalRegion>(o, reinterpret_cast<std::uintptr_t>(addr), size, false, 0);
}

namespace {

int prot_of_perms(const char* perms) {
  return (perms[0] == 'r' ? PROT_READ : 0) | (perms[1] == 'w' ? PROT_WRITE : 0) | (perms[2] == 'x' ? PROT_EXEC : 0);
}

// The protection of every mapping of [base, end), in order; false when the range is not entirely mapped.
bool snapshot_protections(std::uintptr_t base, std::uintptr_t end, std::vector<SignalRegion::Original>* out) {
  struct Walk {
    std::uintptr_t base, end, next;
    std::vector<SignalRegion::Original>* out;
    bool hole;
  } w{base, end, base, out, false};
  const bool read = os::for_each_mapping(
      [](const os::MapsEntry& e, void* ctx) {
        auto& k = *static_cast<Walk*>(ctx);
        if (e.end <= k.next) return true;
        if (e.start >= k.end) return false;
        if (e.start > k.next) {
          k.hole = true;
          return false;
        }
        const std::uintptr_t to = e.end < k.end ? e.end : k.end;
        k.out->push_back(SignalRegion::Original{k.next, to, prot_of_perms(e.perms), e.inode});
        k.next = to;
        return k.next < k.end;
      },
      &w);
  return read && !w.hole && w.next >= end;
}

}  // namespace

Result<void> SignalRegion::attach() {
  void* p = reinterpret_cast<void*>(base);
  if (!owned) {
    // Adopted memory: validate first, act last, and undo on failure: note the protections (which also
    // proves the range is still entirely mapped), protect, and only then drop zero_fill's contents.
    original.clear();
    if (!snapshot_protections(base, end, &original)) {
      return Error(Errc::invalid_argument, std::string("adopt_region '") + name + "': the range is not entirely mapped");
    }
  }
  // Owned anonymous memory: watched for an unmapping behind faultline's back (best effort: without
  // userfaultfd, memory_is_ours() reads /proc/self/maps instead).
  if (owned && alias == 0) monitored = monitor::watch_range(base, end);
  if (const long rc = os::raw_mprotect(p, end - base, initial_prot(*this)); os::is_err(rc)) {
    detach();  // adopted: every mapping back to its protection
    return Error::from_errno("mprotect (region)", static_cast<int>(-rc));
  }
  if (!owned && policy == Policy::zero_fill) {  // the region starts empty
    if (const long rc = os::raw_madvise(p, end - base, MADV_DONTNEED); os::is_err(rc)) {
      detach();
      return Error::from_errno("madvise MADV_DONTNEED (adopt_region)", static_cast<int>(-rc));
    }
  }
  return {};
}

bool SignalRegion::memory_is_ours() const noexcept {
  monitor::settle();
  if (unmapped_seen.load(std::memory_order_acquire)) return false;
  if (monitored && !inherited.load(std::memory_order_acquire)) return true;  // the monitor would have said
  if (!owned) {
    for (const Original& o : original) {
      if (!os::range_matches(o.start, o.end, o.inode)) return false;
    }
    return true;
  }
  if (alias == 0) return os::range_matches(base, end, 0);
  return os::range_matches(base, end, memfd_inode) && os::range_matches(alias, alias + (end - base), memfd_inode);
}

void SignalRegion::detach() noexcept {
  if (monitored && !inherited.load(std::memory_order_acquire)) monitor::unwatch_range(base, end);
  for (const Original& o : original) os::raw_mprotect(reinterpret_cast<void*>(o.start), o.end - o.start, o.prot);
}

void SignalRegion::unmap() noexcept {
  if (owned) os::raw_munmap(reinterpret_cast<void*>(base), end - base);
  if (alias != 0) os::raw_munmap(reinterpret_cast<void*>(alias), end - base);
}

Result<void> SignalRegion::collect_dirty(std::vector<std::size_t>& out, ProtectBatch* defer) {
  // Take the marks first, then re-protect what they name (see on_fault).
  const std::size_t first_new = out.size();
  dirty.take_all(out);
  const std::size_t page = core::page_size();
  const int ro = prot & ~PROT_WRITE;
  for (std::size_t i = first_new; i < out.size();) {  // one mprotect per run of adjacent pages
    std::size_t j = i + 1;
    while (j < out.size() && out[j] == out[j - 1] + 1) ++j;
    const std::uintptr_t addr = base + out[i] * page;
    if (defer != nullptr) {
      queue_protect(*defer, addr, (j - i) * page, ro);
    } else if (const long rc = os::raw_mprotect(reinterpret_cast<void*>(addr), (j - i) * page, ro); rc == -ENOMEM) {
      // Re-arming run by run would split the mapping past vm.max_map_count: re-arm the whole region in one
      // change instead (its clean pages are read-only already; pages protect() lowered to perm_none only
      // lose a notification this policy never gives).
      if (const long all = os::raw_mprotect(reinterpret_cast<void*>(base), end - base, ro); os::is_err(all)) {
        return Error::from_errno("mprotect (collect_dirty)", static_cast<int>(-all));
      }
      break;
    } else if (os::is_err(rc)) {
      return Error::from_errno("mprotect (collect_dirty)", static_cast<int>(-rc));
    }
    i = j;
  }
  return {};
}

Result<void> SignalRegion::protect(std::size_t first, std::size_t count, unsigned new_perms) {
  const std::size_t page = core::page_size();
  const long rc = os::raw_mprotect(reinterpret_cast<void*>(base + first * page), count * page, region::prot_of(new_perms));
  if (os::is_err(rc)) return Error::from_errno("mprotect (Region::protect)", static_cast<int>(-rc));
  return {};
}

Result<void> SignalRegion::discard(std::size_t first, std::size_t count) {
  const std::size_t page = core::page_size();
  void* view = reinterpret_cast<void*>(base + first * page);
  const std::size_t len = count * page;
  if (!pstate) {
    if (const long rc = os::raw_mprotect(view, len, initial_prot(*this)); os::is_err(rc)) {
      return Error::from_errno("mprotect (Region::discard)", static_cast<int>(-rc));
    }
    if (policy == Policy::track_dirty) dirty.clear_range(first, count);
    if (const long rc = os::raw_madvise(view, len, MADV_DONTNEED); os::is_err(rc)) {
      return Error::from_errno("madvise (Region::discard)", static_cast<int>(-rc));
    }
    return {};
  }
  // Filled regions: claim every page (waiting out fills in progress), hide and free them, then mark them
  // empty, which wakes anyone who faulted on them meanwhile and lets them fill again.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::size_t claimed = 0;
  for (std::size_t i = first; i < first + count; ++i) {
    for (;;) {
      std::uint32_t s = pstate[i].load(std::memory_order_acquire);
      if ((s & kPageStateMask) != kPageFilling &&
          pstate[i].compare_exchange_weak(s, kPageFilling | (s & kPageWaiters), std::memory_order_acq_rel)) {
        break;
      }
      if (std::chrono::steady_clock::now() > deadline) {
        finish_fill(first, claimed, FillStatus{EAGAIN, nullptr});
        return Error(Errc::timed_out, std::string("Region::discard: a fill of region '") + name + "' page " +
                                          std::to_string(i) + " did not finish in 10 s");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    ++claimed;
  }
  Result<void> out;
  if (const long rc = os::raw_mprotect(view, len, PROT_NONE); os::is_err(rc)) {
    out = Error::from_errno("mprotect (Region::discard)", static_cast<int>(-rc));
  } else if (const long rm = os::raw_madvise(reinterpret_cast<void*>(alias + first * page), len, MADV_REMOVE);
             os::is_err(rm)) {
    out = Error::from_errno("madvise MADV_REMOVE (Region::discard)", static_cast<int>(-rm));
  }
  finish_fill(first, count, FillStatus{EAGAIN, nullptr});  // back to empty, wake waiters
  return out;
}

Result<std::size_t> SignalRegion::write_back(std::size_t, std::size_t) {
  return Error(Errc::unsupported, std::string("region '") + name + "': write-back needs the userfaultfd backend");
}

void SignalRegion::serve(detail::PagerImpl& p, detail::PagerSlot& slot) {
  FillStatus st;
  try {
    st = store->fill(slot.req);
  } catch (...) {
    st = FillStatus{EIO, "the pager's fill threw an exception"};
  }
  st = finish_fill(slot.first_page, slot.count, st);
  pager::complete(p, slot, st);
}

}  // namespace faultline::backend::signals

namespace faultline {

Result<void> ProtectBatch::add(const Region& region, std::size_t first_page, std::size_t count, unsigned perms) {
  return core::guarded([&]() -> Result<void> {
    const detail::RegionImpl* r = region.impl_;
    if (r == nullptr) return Error(Errc::invalid_argument, "ProtectBatch: empty region handle");
    if (r->backend() != Backend::signals) {
      return Error(Errc::unsupported, std::string("ProtectBatch: region '") + r->name + "' is served by " +
                                          backend_name(r->backend()) + "; protection changes need the signal backend");
    }
    if (auto c = r->refuse_if_inherited("ProtectBatch"); !c) return c;
    if (auto c = r->check_range(first_page, count, perms, "ProtectBatch"); !c) return c;
    const std::size_t page = core::page_size();
    ops_.push_back(Op{r->id, r->base + first_page * page, count * page, region::prot_of(perms)});
    return {};
  });
}

Result<std::size_t> ProtectBatch::commit() {
  return core::guarded([&]() -> Result<std::size_t> {
    if (ops_.empty()) return std::size_t{0};
    std::vector<Op> ops;
    ops.swap(ops_);
    // The table's lock for the whole commit: no region of the batch can end meanwhile. First check every
    // change (its region still registered, and its memory still the mapping faultline made), then apply.
    std::lock_guard lock(region::table_mutex());
    std::vector<std::uint64_t> checked;
    for (const Op& op : ops) {
      const detail::RegionImpl* r = region::lookup(op.addr);
      if (r == nullptr || r->id != op.region) {
        return Error(Errc::not_found, "ProtectBatch::commit: a change for a region that has ended (nothing was applied)");
      }
      if (std::find(checked.begin(), checked.end(), op.region) != checked.end()) continue;
      if (auto c = r->refuse_if_not_ours("ProtectBatch::commit"); !c) return c.error();
      checked.push_back(op.region);
    }
    std::vector<Op> sorted = ops;
    std::sort(sorted.begin(), sorted.end(), [](const Op& a, const Op& b) { return a.addr < b.addr; });
    bool overlap = false;
    for (std::size_t i = 1; i < sorted.size() && !overlap; ++i) {
      overlap = sorted[i - 1].addr + sorted[i - 1].len > sorted[i].addr;
    }
    std::vector<Op> merged;
    if (overlap) {
      merged = std::move(ops);  // the later change to a page must win: keep the order
    } else {
      merged.reserve(sorted.size());
      for (const Op& op : sorted) {
        if (!merged.empty() && merged.back().prot == op.prot && merged.back().addr + merged.back().len == op.addr) {
          merged.back().len += op.len;
        } else {
          merged.push_back(op);
        }
      }
    }
    std::size_t calls = 0;
    for (const Op& op : merged) {
      ++calls;
      if (const long rc = os::raw_mprotect(reinterpret_cast<void*>(op.addr), op.len, op.prot); os::is_err(rc)) {
        return Error::from_errno("mprotect (ProtectBatch::commit)", static_cast<int>(-rc));
      }
    }
    return calls;
  });
}

}  // namespace faultline
