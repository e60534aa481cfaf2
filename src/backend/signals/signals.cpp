// backend/signals/signals.cpp: the signal backend's regions: mapping, protecting, collecting dirty pages,
// discarding, serving pager requests, and protection batches. Not signal path (the fault handling is in
// signals_sig.cpp).
#include "backend/signals/signals.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <string>
#include <thread>

#include "core/page.hpp"
#include "pager/pager.hpp"
#include "region/table.hpp"

namespace faultline::backend::signals {

SignalRegion::SignalRegion(const RegionOptions& o, std::uintptr_t region_base, std::size_t size, bool is_owned,
                           std::uintptr_t alias_view)
    : RegionImpl(o, region_base, size, is_owned), alias(alias_view) {
  if (policy == Policy::track_dirty) dirty = detail::PageBits(pages());
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

Result<std::unique_ptr<detail::RegionImpl>> create(std::size_t size, const RegionOptions& o) {
  void* view = nullptr;
  void* alias = nullptr;
  if (o.policy == Policy::provider || o.policy == Policy::pager) {
    auto m = map_filled(size, o);
    if (!m) return std::move(m).error();
    view = m.value().first;
    alias = m.value().second;
  } else {
    view = mmap(nullptr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (view == MAP_FAILED) return Error::from_errno("mmap (reserve_region)", errno);
  }
  return std::unique_ptr<detail::RegionImpl>(std::make_unique<SignalRegion>(
      o, reinterpret_cast<std::uintptr_t>(view), size, true, reinterpret_cast<std::uintptr_t>(alias)));
}

std::unique_ptr<detail::RegionImpl> adopt(void* addr, std::size_t size, const RegionOptions& o) {
  return std::make_unique<SignalRegion>(o, reinterpret_cast<std::uintptr_t>(addr), size, false, 0);
}

Result<void> SignalRegion::attach() {
  void* p = reinterpret_cast<void*>(base);
  // Adopted zero_fill memory: the region starts empty.
  if (!owned && policy == Policy::zero_fill && madvise(p, end - base, MADV_DONTNEED) != 0) {
    return Error::from_errno("madvise MADV_DONTNEED (adopt_region)", errno);
  }
  if (mprotect(p, end - base, initial_prot(*this)) != 0) return Error::from_errno("mprotect (region)", errno);
  return {};
}

void SignalRegion::unmap() noexcept {
  if (owned) munmap(reinterpret_cast<void*>(base), end - base);
  if (alias != 0) munmap(reinterpret_cast<void*>(alias), end - base);
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
    } else if (mprotect(reinterpret_cast<void*>(addr), (j - i) * page, ro) != 0) {
      return Error::from_errno("mprotect (collect_dirty)", errno);
    }
    i = j;
  }
  return {};
}

Result<void> SignalRegion::protect(std::size_t first, std::size_t count, unsigned new_perms) {
  const std::size_t page = core::page_size();
  if (mprotect(reinterpret_cast<void*>(base + first * page), count * page, region::prot_of(new_perms)) != 0) {
    return Error::from_errno("mprotect (Region::protect)", errno);
  }
  return {};
}

Result<void> SignalRegion::discard(std::size_t first, std::size_t count) {
  const std::size_t page = core::page_size();
  void* view = reinterpret_cast<void*>(base + first * page);
  const std::size_t len = count * page;
  if (!pstate) {
    if (mprotect(view, len, initial_prot(*this)) != 0) return Error::from_errno("mprotect (Region::discard)", errno);
    if (policy == Policy::track_dirty) dirty.clear_range(first, count);
    if (madvise(view, len, MADV_DONTNEED) != 0) return Error::from_errno("madvise (Region::discard)", errno);
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
  if (mprotect(view, len, PROT_NONE) != 0) {
    out = Error::from_errno("mprotect (Region::discard)", errno);
  } else if (madvise(reinterpret_cast<void*>(alias + first * page), len, MADV_REMOVE) != 0) {
    out = Error::from_errno("madvise MADV_REMOVE (Region::discard)", errno);
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
  const detail::RegionImpl* r = region.impl_;
  if (r == nullptr) return Error(Errc::invalid_argument, "ProtectBatch: empty region handle");
  if (r->backend() != Backend::signals) {
    return Error(Errc::unsupported, std::string("ProtectBatch: region '") + r->name + "' is served by " +
                                        backend_name(r->backend()) + "; protection changes need the signal backend");
  }
  if (auto c = r->check_range(first_page, count, perms, "ProtectBatch"); !c) return c;
  const std::size_t page = core::page_size();
  ops_.push_back(Op{r->base + first_page * page, count * page, region::prot_of(perms)});
  return {};
}

Result<std::size_t> ProtectBatch::commit() {
  if (ops_.empty()) return std::size_t{0};
  std::vector<Op> ops;
  ops.swap(ops_);
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
    if (mprotect(reinterpret_cast<void*>(op.addr), op.len, op.prot) != 0) {
      return Error::from_errno("mprotect (ProtectBatch::commit)", errno);
    }
  }
  return calls;
}

}  // namespace faultline
