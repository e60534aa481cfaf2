// region/fault_sig.cpp: the regions' fault handler and describer, as registered with the dispatcher,
// and the region record's signal-path members (signal path). The handler finds the region and hands the
// fault to its backend; everything policy- and backend-specific happens behind RegionImpl::on_fault.
#include <sys/mman.h>

#include "core/format.hpp"
#include "core/page.hpp"
#include "os/linux/errnames.hpp"
#include "region/table.hpp"

namespace faultline::region {

int prot_of(unsigned perms) noexcept {
  return ((perms & perm_read) ? PROT_READ : 0) | ((perms & perm_write) ? PROT_WRITE : 0) |
         ((perms & perm_exec) ? PROT_EXEC : 0);
}

// Registered for SIGSEGV and SIGBUS (the dispatcher offers only kernel-raised faults).
// The region is pinned while its backend works (a fill may take long): the table's epoch covers only the
// lookup.
Disposition handle_fault(FaultContext& ctx, void*) {
  detail::RegionImpl* r = find_and_pin(ctx.address());
  if (r == nullptr) return Disposition::declined;
  r->counters.note_fault();
  const Disposition d = r->on_fault(ctx);
  unpin(r);
  return d;
}

std::size_t describe(std::uintptr_t addr, char* buf, std::size_t cap, void*) {
  detail::RegionImpl* r = find_and_pin(addr);
  if (r == nullptr) return 0;
  core::Formatter f(buf, cap);
  f.put('\'').put(r->name).put("' ").hex(r->base).put('-').hex(r->end).put(" policy ")
      .put(policy_name(r->policy)).put(" perms ").put((r->perms & perm_read) ? 'r' : '-')
      .put((r->perms & perm_write) ? 'w' : '-').put((r->perms & perm_exec) ? 'x' : '-').put(" page ")
      .udec((addr - r->base) / core::page_size());
  r->describe_backend(f);
  char failure[160];
  r->copy_failure(failure, sizeof failure);
  unpin(r);
  if (failure[0] != '\0') f.put("; last fill: ").put(failure);
  f.c_str();
  return f.size();
}

}  // namespace faultline::region

namespace faultline::detail {

std::size_t RegionImpl::pages() const noexcept { return (end - base) / core::page_size(); }

void RegionImpl::describe_backend(core::Formatter&) const noexcept {}

void RegionImpl::set_failure(const char* text) noexcept {
  while (last_failure_busy_.exchange(true, std::memory_order_acquire)) {
  }
  std::size_t n = 0;
  for (; text[n] != '\0' && n + 1 < sizeof last_failure_; ++n) last_failure_[n] = text[n];
  last_failure_[n] = '\0';
  last_failure_busy_.store(false, std::memory_order_release);
}

void RegionImpl::copy_failure(char* out, std::size_t cap) noexcept {
  if (cap == 0) return;
  out[0] = '\0';
  if (last_failure_busy_.exchange(true, std::memory_order_acquire)) return;
  std::size_t n = 0;
  for (; last_failure_[n] != '\0' && n + 1 < cap; ++n) out[n] = last_failure_[n];
  out[n] = '\0';
  last_failure_busy_.store(false, std::memory_order_release);
}

void RegionImpl::fill_failure_text(char* buf, std::size_t cap, std::size_t first, std::size_t count, int err,
                                   const char* reason) const noexcept {
  core::Formatter f(buf, cap);
  f.put(policy == Policy::pager ? "pager" : "provider").put(" for region '").put(name).put("' failed on page ")
      .udec(first);
  if (count > 1) f.put('-').udec(first + count - 1);
  f.put(": ").put(os::errno_name(err)).put(" (errno ").dec(err).put(')');
  if (reason != nullptr) f.put(": ").put(reason);
  f.c_str();
}

void RegionImpl::record_fill_failure(std::size_t page, int err, const char* reason) noexcept {
  char text[sizeof last_failure_];
  fill_failure_text(text, sizeof text, page, 1, err, reason);
  set_failure(text);
}

}  // namespace faultline::detail

namespace faultline {

const char* policy_name(Policy p) noexcept {
  switch (p) {
    case Policy::guard: return "guard";
    case Policy::zero_fill: return "zero_fill";
    case Policy::provider: return "provider";
    case Policy::pager: return "pager";
    case Policy::track_dirty: return "track_dirty";
    case Policy::barrier: return "barrier";
  }
  return "?";
}

const char* backend_name(Backend b) noexcept {
  switch (b) {
    case Backend::automatic: return "automatic";
    case Backend::signals: return "signals";
    case Backend::userfaultfd: return "userfaultfd";
  }
  return "?";
}

const char* fill_path_name(FillPath p) noexcept {
  switch (p) {
    case FillPath::automatic: return "automatic";
    case FillPath::copy: return "copy";
    case FillPath::shmem_cache: return "shmem_cache";
  }
  return "?";
}

}  // namespace faultline
