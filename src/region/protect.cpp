// region/protect.cpp: changing the protection of a region's pages (one range, or batched), and
// discarding pages.
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "core/page.hpp"
#include "faultline/region.hpp"
#include "os/linux/uffd.hpp"
#include "os/linux/uapi.hpp"
#include "region/fill.hpp"
#include "region/table.hpp"
#include "region/uffd.hpp"

namespace faultline {

namespace {

Result<void> check(const detail::RegionImpl* r, std::size_t first, std::size_t count, unsigned perms) {
  if (r == nullptr) return Error(Errc::invalid_argument, "protect: empty region handle");
  const std::size_t pages = (r->end - r->base) / core::page_size();
  const std::string who = std::string("protect: region '") + r->name + "'";
  if (count == 0) return Error(Errc::invalid_argument, who + ": page count is zero");
  if (first >= pages || count > pages - first) {
    return Error(Errc::invalid_argument, who + ": pages [" + std::to_string(first) + ", " +
                                             std::to_string(first + count) + ") are outside its " +
                                             std::to_string(pages) + " pages");
  }
  if ((perms & ~r->perms) != 0) {
    return Error(Errc::invalid_argument, who + ": permissions beyond the region's own");
  }
  if ((r->policy == Policy::provider || r->policy == Policy::pager) && perms != perm_none) {
    // Raising protection here could expose a page before its fill: only re-arming is allowed; the next
    // access restores the region's permissions on filled pages.
    return Error(Errc::invalid_argument, who + ": a " + policy_name(r->policy) +
                                             " region's pages can only be protected to perm_none");
  }
  return {};
}

}  // namespace

Result<void> Region::protect(std::size_t first_page, std::size_t count, unsigned perms) {
  if (auto c = check(impl_, first_page, count, perms); !c) return c;
  if (impl_->backend == Backend::userfaultfd) {
    return Error(Errc::unsupported, std::string("protect: region '") + impl_->name +
                                        "' is served by userfaultfd; protection changes need the signal backend");
  }
  const std::size_t page = core::page_size();
  if (mprotect(reinterpret_cast<void*>(impl_->base + first_page * page), count * page,
               region::prot_of(perms)) != 0) {
    return Error::from_errno("mprotect (Region::protect)", errno);
  }
  return {};
}

Result<void> Region::discard(std::size_t first_page, std::size_t count) {
  if (auto c = check(impl_, first_page, count, perm_none); !c) return c;
  return region::uffd::discard_pages(*impl_, first_page, count);
}

Result<void> region::uffd::discard_pages(detail::RegionImpl& r, std::size_t first_page, std::size_t count) {
  const std::size_t page = core::page_size();
  void* view = reinterpret_cast<void*>(r.base + first_page * page);
  const std::size_t len = count * page;
  const int armed = r.policy == Policy::track_writes ? r.prot & ~PROT_WRITE : PROT_NONE;
  if (r.backend == Backend::userfaultfd) {
    // Dropped pages are missing again: the next access faults to userfaultfd (and a poisoned page is
    // cleared). Written-page tracking is re-armed on the fresh pages.
    if (r.filled != nullptr) {
      for (std::size_t i = first_page; i < first_page + count; ++i) {
        r.filled[i / 64].fetch_and(~(std::uint64_t{1} << (i % 64)), std::memory_order_acq_rel);
      }
    }
    if (madvise(view, len, MADV_DONTNEED) != 0) return Error::from_errno("madvise (Region::discard)", errno);
    if (r.writeback != nullptr) {
      for (std::size_t i = first_page; i < first_page + count; ++i) {
        r.dirty[i / 64].fetch_and(~(std::uint64_t{1} << (i % 64)), std::memory_order_acq_rel);
      }
    }
    if (r.policy == Policy::track_writes) {
      for (std::size_t i = first_page; i < first_page + count; ++i) {
        r.dirty[i / 64].fetch_and(~(std::uint64_t{1} << (i % 64)), std::memory_order_acq_rel);
      }
      // Synchronous write-protect can only protect present pages.
      if (r.write_tracking == WriteTracking::sync_wp) madvise(view, len, MADV_POPULATE_WRITE);
    }
    if (r.policy == Policy::track_writes &&
        os::is_err(os::uffd_writeprotect(r.uffd, reinterpret_cast<std::uintptr_t>(view), len, true))) {
      return Error::from_errno("UFFDIO_WRITEPROTECT (Region::discard)", errno);
    }
    region::set_failure(r, "");
    return {};
  }
  if (r.pstate == nullptr) {
    if (mprotect(view, len, armed) != 0) return Error::from_errno("mprotect (Region::discard)", errno);
    if (r.policy == Policy::track_writes) {
      for (std::size_t i = first_page; i < first_page + count; ++i) {
        r.dirty[i / 64].fetch_and(~(std::uint64_t{1} << (i % 64)), std::memory_order_acq_rel);
      }
    }
    if (madvise(view, len, MADV_DONTNEED) != 0) return Error::from_errno("madvise (Region::discard)", errno);
    return {};
  }
  // Filled regions: claim every page (waiting out fills in progress), hide and free them, then mark them
  // empty, which wakes anyone who faulted on them meanwhile and lets them fill again.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::size_t claimed = 0;
  for (std::size_t i = first_page; i < first_page + count; ++i) {
    for (;;) {
      std::uint32_t s = r.pstate[i].load(std::memory_order_acquire);
      if ((s & region::kPageStateMask) != region::kPageFilling &&
          r.pstate[i].compare_exchange_weak(s, region::kPageFilling | (s & region::kPageWaiters),
                                            std::memory_order_acq_rel)) {
        break;
      }
      if (std::chrono::steady_clock::now() > deadline) {
        region::finish_fill(r, first_page, claimed, FillStatus{EAGAIN, nullptr});
        return Error(Errc::timed_out, std::string("Region::discard: a fill of region '") + r.name +
                                          "' page " + std::to_string(i) + " did not finish in 10 s");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    ++claimed;
  }
  Result<void> out;
  if (mprotect(view, len, PROT_NONE) != 0) {
    out = Error::from_errno("mprotect (Region::discard)", errno);
  } else if (madvise(reinterpret_cast<void*>(r.alias + first_page * page), len, MADV_REMOVE) != 0) {
    out = Error::from_errno("madvise MADV_REMOVE (Region::discard)", errno);
  }
  region::finish_fill(r, first_page, count, FillStatus{EAGAIN, nullptr});  // back to empty, wake waiters
  return out;
}

namespace {

// Writes back the dirty pages of [first, first + count), runs of adjacent pages at a time, after
// write-protecting each run again.
Result<std::size_t> flush_range(detail::RegionImpl& r, std::size_t first, std::size_t count) {
  const std::size_t page = core::page_size();
  std::vector<std::size_t> pages;
  for (std::size_t i = first; i < first + count; ++i) {
    const std::uint64_t bit = std::uint64_t{1} << (i % 64);
    if (r.dirty[i / 64].fetch_and(~bit, std::memory_order_acq_rel) & bit) pages.push_back(i);
  }
  std::size_t written = 0;
  for (std::size_t a = 0; a < pages.size();) {
    std::size_t b = a + 1;
    while (b < pages.size() && pages[b] == pages[b - 1] + 1) ++b;
    const std::uintptr_t addr = r.base + pages[a] * page;
    const std::size_t len = (b - a) * page;
    if (os::is_err(os::uffd_writeprotect(r.uffd, addr, len, true))) {
      return Error::from_errno("UFFDIO_WRITEPROTECT (flush)", errno);
    }
    const FillRequest req{RegionInfo{r.name, r.base, r.end - r.base, r.policy, r.perms}, pages[a] * page, len,
                          Access::write, 0, 0, reinterpret_cast<std::byte*>(addr)};
    const FillStatus st = r.writeback(req, r.writeback_data);
    if (st.error != 0) {
      for (std::size_t k = a; k < pages.size(); ++k) {  // not stored: still dirty
        r.dirty[pages[k] / 64].fetch_or(std::uint64_t{1} << (pages[k] % 64), std::memory_order_acq_rel);
      }
      return Error(Errc::system_error, std::string("flush: region '") + r.name + "': the writeback of page " +
                                           std::to_string(pages[a]) + " failed: " + std::strerror(st.error) +
                                           (st.reason != nullptr ? std::string(" (") + st.reason + ")" : ""));
    }
    written += b - a;
    a = b;
  }
  return written;
}

Result<void> check_writeback(const detail::RegionImpl* r, const char* what) {
  if (r == nullptr) return Error(Errc::invalid_argument, std::string(what) + ": empty region handle");
  if (r->writeback == nullptr) {
    return Error(Errc::invalid_argument, std::string(what) + ": region '" + r->name + "' has no writeback function");
  }
  return {};
}

}  // namespace

Result<std::size_t> Region::flush() {
  if (auto c = check_writeback(impl_, "flush"); !c) return c.error();
  return flush_range(*impl_, 0, (impl_->end - impl_->base) / core::page_size());
}

Result<std::size_t> Region::evict(std::size_t first_page, std::size_t count) {
  if (auto c = check_writeback(impl_, "evict"); !c) return c.error();
  if (auto c = check(impl_, first_page, count, perm_none); !c) return c.error();
  return region::uffd::evict_pages(*impl_, first_page, count);
}

Result<std::size_t> region::uffd::evict_pages(detail::RegionImpl& r, std::size_t first, std::size_t count) {
  std::size_t written = 0;
  if (r.writeback != nullptr) {
    auto w = flush_range(r, first, count);
    if (!w) return w;
    written = *w;
  }
  if (auto d = discard_pages(r, first, count); !d) return d.error();
  return written;
}

Result<void> ProtectBatch::add(const Region& region, std::size_t first_page, std::size_t count, unsigned perms) {
  const detail::RegionImpl* r = region.impl_;
  if (auto c = check(r, first_page, count, perms); !c) return c;
  if (r->backend == Backend::userfaultfd) {
    return Error(Errc::unsupported, std::string("ProtectBatch: region '") + r->name + "' is served by userfaultfd");
  }
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
