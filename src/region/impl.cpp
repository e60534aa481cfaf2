// region/impl.cpp: the region record's construction and its checks. Not signal path.
#include "region/impl.hpp"

#include <cstdio>
#include <string>

#include "core/page.hpp"
#include "region/table.hpp"

namespace faultline::detail {

namespace {
std::atomic<std::uint64_t> g_next_id{1};
}  // namespace

RegionImpl::RegionImpl(const RegionOptions& o, std::uintptr_t region_base, std::size_t size, bool is_owned)
    : id(g_next_id.fetch_add(1, std::memory_order_relaxed)),
      base(region_base),
      end(region_base + size),
      policy(o.policy),
      perms(o.perms),
      prot(region::prot_of(o.perms)),
      fault_around(o.fault_around),
      barrier(o.barrier),
      barrier_data(o.barrier_data),
      owned(is_owned),
      fn_store(o.fill, o.fill_data, o.policy == Policy::provider),
      write_back_enabled(o.write_back),
      pager(impl_of(o.pager)),
      fill_timeout_ms(static_cast<std::uint32_t>(o.fill_timeout.count())) {
  std::snprintf(name, sizeof name, "%s", o.name.c_str());
  store = o.store != nullptr ? o.store : (o.fill != nullptr ? &fn_store : nullptr);
}

RegionImpl::~RegionImpl() = default;

void RegionImpl::queue_protect(ProtectBatch& batch, std::uintptr_t addr, std::size_t len, int new_prot) const {
  batch.ops_.push_back(ProtectBatch::Op{id, addr, len, new_prot});
}

Result<std::size_t> RegionImpl::evict(std::size_t first, std::size_t count) {
  std::size_t written = 0;
  if (write_back_enabled) {
    auto w = write_back(first, count);
    if (!w) return w;
    written = *w;
  }
  if (auto d = discard(first, count); !d) return d.error();
  counters.note_evicted(count);
  return written;
}

Result<void> RegionImpl::refuse_if_not_ours(const char* what) const {
  if (memory_is_ours()) return {};
  return Error(Errc::not_found, std::string(what) + ": region '" + name +
                                    "': its memory is no longer the mapping faultline made (was it unmapped behind "
                                    "faultline's back?); faultline leaves the address range alone");
}

Result<void> RegionImpl::refuse_if_inherited(const char* what) const {
  if (!inherited.load(std::memory_order_acquire)) return {};
  return Error(Errc::unsupported, std::string(what) + ": region '" + name +
                                      "' was inherited across fork(): in a child only reset() and the "
                                      "accesses the fork contract allows (faultline/region.hpp) are offered");
}

Result<void> RegionImpl::check_range(std::size_t first, std::size_t count, unsigned new_perms, const char* what) const {
  const std::size_t n = pages();
  const std::string who = std::string(what) + ": region '" + name + "'";
  if (count == 0) return Error(Errc::invalid_argument, who + ": page count is zero");
  if (first >= n || count > n - first) {
    return Error(Errc::invalid_argument, who + ": pages [" + std::to_string(first) + ", " +
                                             std::to_string(first + count) + ") are outside its " + std::to_string(n) +
                                             " pages");
  }
  if ((new_perms & ~perms) != 0) return Error(Errc::invalid_argument, who + ": permissions beyond the region's own");
  if ((policy == Policy::provider || policy == Policy::pager) && new_perms != perm_none) {
    // Raising protection here could expose a page before its fill: only re-arming is allowed; the next
    // access restores the region's permissions on filled pages.
    return Error(Errc::invalid_argument, who + ": a " + policy_name(policy) +
                                             " region's pages can only be protected to perm_none");
  }
  return {};
}

}  // namespace faultline::detail
