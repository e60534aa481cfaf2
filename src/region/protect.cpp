// region/protect.cpp: changing the protection of a region's pages, one at a time or batched.
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include "core/page.hpp"
#include "faultline/region.hpp"
#include "region/table.hpp"

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
  const std::size_t page = core::page_size();
  if (mprotect(reinterpret_cast<void*>(impl_->base + first_page * page), count * page,
               region::prot_of(perms)) != 0) {
    return Error::from_errno("mprotect (Region::protect)", errno);
  }
  return {};
}

Result<void> ProtectBatch::add(const Region& region, std::size_t first_page, std::size_t count, unsigned perms) {
  const detail::RegionImpl* r = region.impl_;
  if (auto c = check(r, first_page, count, perms); !c) return c;
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
