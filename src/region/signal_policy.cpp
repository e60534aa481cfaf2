// region/signal_policy.cpp: region lookup and the policies on the mprotect+signal backend (signal path).
#include <sys/mman.h>

#include "core/format.hpp"
#include "core/page.hpp"
#include "os/linux/syscall.hpp"
#include "os/linux/uapi.hpp"
#include "region/fill.hpp"
#include "region/table.hpp"
#include "region/uffd.hpp"
#include "trap/dispatcher.hpp"


namespace faultline::region {

constinit std::atomic<const Top*> g_top{nullptr};

int prot_of(unsigned perms) noexcept {
  return ((perms & perm_read) ? PROT_READ : 0) | ((perms & perm_write) ? PROT_WRITE : 0) |
         ((perms & perm_exec) ? PROT_EXEC : 0);
}

namespace {

// The index of the last element <= x in the sorted a[0..n) (n > 0), or 0 when even a[0] > x (the caller
// checks). Branch-free: the loop's only branch is its trip count, which depends on n alone.
inline std::size_t last_not_above(const std::uintptr_t* a, std::size_t n, std::uintptr_t x) noexcept {
  const std::uintptr_t* p = a;
  while (n > 1) {
    const std::size_t half = n / 2;
    p = p[half] <= x ? p + half : p;  // a conditional move
    n -= half;
  }
  return static_cast<std::size_t>(p - a);
}

}  // namespace

detail::RegionImpl* lookup(std::uintptr_t addr) noexcept {
  const Top* top = g_top.load(std::memory_order_acquire);
  if (top == nullptr || top->first.empty()) return nullptr;
  const Leaf* leaf = top->leaf.data()[last_not_above(top->first.data(), top->first.size(), addr)];
  if (leaf->n == 0) return nullptr;
  const std::size_t i = last_not_above(leaf->base, leaf->n, addr);
  return addr >= leaf->base[i] && addr < leaf->end[i] ? leaf->r[i] : nullptr;
}

namespace {

bool permitted(const detail::RegionImpl& r, Access a) noexcept {
  switch (a) {
    case Access::read: return (r.perms & perm_read) != 0;
    case Access::write: return (r.perms & perm_write) != 0;
    case Access::execute: return (r.perms & perm_exec) != 0;
    case Access::unknown: return true;
  }
  return true;
}

Disposition zero_fill(const detail::RegionImpl& r, std::uintptr_t page_addr) noexcept {
  const std::size_t page = core::page_size();
  std::uintptr_t end = page_addr + r.fault_around * page;
  if (end > r.end || end < page_addr) end = r.end;
  void* p = reinterpret_cast<void*>(page_addr);
  const std::size_t len = end - page_addr;
  if (os::is_err(os::raw_mprotect(p, len, r.prot))) return Disposition::declined;
  // Populate the run now: one system call instead of a demand-zero fault per page. Failure is harmless
  // (the kernel then faults pages in on access).
  os::raw_madvise(p, len, (r.perms & perm_write) ? MADV_POPULATE_WRITE : MADV_POPULATE_READ);
  return Disposition::resolved;
}

Disposition track_write(const detail::RegionImpl& r, std::uintptr_t page_addr) noexcept {
  const std::size_t page = core::page_size();
  // Unprotect first, then mark: collect_dirty() takes the marks and only then re-protects, so a page
  // is never left writable without its mark (at worst it is reported dirty once too often).
  if (os::is_err(os::raw_mprotect(reinterpret_cast<void*>(page_addr), page, r.prot))) return Disposition::declined;
  std::size_t index = (page_addr - r.base) / page;
  r.dirty[index / 64].fetch_or(std::uint64_t{1} << (index % 64), std::memory_order_release);
  return Disposition::resolved;
}

}  // namespace

// Registered for SIGSEGV and SIGBUS (the dispatcher filters by signal).
Disposition handle_fault(FaultContext& ctx, void*) {
  const std::uintptr_t addr = ctx.address();
  detail::RegionImpl* r = lookup(addr);
  if (r == nullptr) return Disposition::declined;
  if (ctx.signal() == SIGBUS) {
    // Only a self-service userfaultfd region's missing page (BUS_ADRERR from UFFD_FEATURE_SIGBUS) is
    // ours to resolve; a poisoned page (BUS_MCEERR_AR) or any other SIGBUS goes on to the report.
    if (r->backend != Backend::userfaultfd || r->uffd_mode != UffdMode::self_service || ctx.code() != BUS_ADRERR) {
      return Disposition::declined;
    }
    if (!permitted(*r, ctx.access())) return Disposition::declined;
    // Provider fills go through a buffer on this (alternate) stack: at most 4 pages at a time.
    alignas(64) unsigned char bounce[4 * 4096];
    if (uffd::fill(*r, core::align_down(addr, core::page_size()), ctx.access(), ctx.pc(), os::raw_gettid(), bounce,
                   sizeof bounce) != 0) {
      // Failed (and the page poisoned): end this access in SIGBUS now, with the cause, as the signal
      // backend does, rather than rely on the poisoned page alone.
      char cause[200];
      core::Formatter c(cause, sizeof cause);
      char failure[sizeof r->last_failure];
      copy_failure(*r, failure, sizeof failure);
      c.put("region '").put(r->name).put("': ").put(failure);
      c.c_str();
      trap::fail_with_sigbus(ctx, cause);
    }
    return Disposition::resolved;
  }
  if (r->backend == Backend::userfaultfd) return Disposition::declined;  // a permission violation
  if (r->policy == Policy::barrier) {
    RegionInfo info{r->name, r->base, r->end - r->base, r->policy, r->perms};
    return r->barrier(ctx, info, r->barrier_data);
  }
  if (r->policy == Policy::guard || !permitted(*r, ctx.access())) return Disposition::declined;
  const std::uintptr_t page_addr = core::align_down(addr, core::page_size());
  switch (r->policy) {
    case Policy::zero_fill: return zero_fill(*r, page_addr);
    case Policy::provider:
    case Policy::pager: return resolve_filled(ctx, *r, page_addr);
    case Policy::track_writes:
      if (ctx.access() != Access::write) {
        // A read of a page protect() lowered below read: make it readable again, still write-protected.
        if (os::is_err(os::raw_mprotect(reinterpret_cast<void*>(page_addr), core::page_size(),
                                        r->prot & ~PROT_WRITE))) {
          return Disposition::declined;
        }
        return Disposition::resolved;
      }
      return track_write(*r, page_addr);
    default: break;
  }
  return Disposition::declined;
}

std::size_t describe(std::uintptr_t addr, char* buf, std::size_t cap, void*) {
  detail::RegionImpl* r = lookup(addr);
  if (r == nullptr) return 0;
  core::Formatter f(buf, cap);
  f.put('\'').put(r->name).put("' ").hex(r->base).put('-').hex(r->end).put(" policy ")
      .put(policy_name(r->policy)).put(" perms ").put((r->perms & perm_read) ? 'r' : '-')
      .put((r->perms & perm_write) ? 'w' : '-').put((r->perms & perm_exec) ? 'x' : '-').put(" page ")
      .udec((addr - r->base) / core::page_size());
  if (r->backend == Backend::userfaultfd) f.put(" backend userfaultfd");
  char failure[sizeof r->last_failure];
  copy_failure(*r, failure, sizeof failure);
  if (failure[0] != '\0') f.put("; last fill: ").put(failure);
  f.c_str();
  return f.size();
}

}  // namespace faultline::region

namespace faultline {

// Async-signal-safe: the report's describer uses it.
const char* policy_name(Policy p) noexcept {
  switch (p) {
    case Policy::guard: return "guard";
    case Policy::zero_fill: return "zero_fill";
    case Policy::provider: return "provider";
    case Policy::pager: return "pager";
    case Policy::track_writes: return "track_writes";
    case Policy::barrier: return "barrier";
  }
  return "?";
}

}  // namespace faultline
