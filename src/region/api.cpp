// region/api.cpp: the public region API: validating options, reserve_region / adopt_region (the backend
// seam chooses and maps, the table publishes), the Region handle's calls, prefault. Not signal path.
//
// This file sits above backend/ in the layers (src/README.md): it is the one place where the region
// table, the backends and the store meet.
#include <sys/mman.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/guard.hpp"
#include "backend/backend.hpp"
#include "core/page.hpp"
#include "faultline/region.hpp"
#include "faultline/trap.hpp"
#include "region/impl.hpp"
#include "region/table.hpp"

namespace faultline {

// FAULTLINE_STATS (below).
static bool stats_asked();

namespace {

using detail::RegionImpl;

std::mutex g_handler_mutex;
bool g_handler_added = false;  // guarded by g_handler_mutex

std::string hex(std::uintptr_t v) {
  char b[32];
  std::snprintf(b, sizeof b, "0x%lx", static_cast<unsigned long>(v));
  return b;
}
// One snprintf (GCC 12 at -O3 warns falsely, -Wrestrict, about a chain of string concatenations here).
std::string range_text(std::uintptr_t base, std::size_t size) {
  char b[64];
  std::snprintf(b, sizeof b, "[0x%lx, +0x%lx)", static_cast<unsigned long>(base), static_cast<unsigned long>(size));
  return b;
}

Result<void> validate(std::size_t size, const RegionOptions& o) {
  const std::size_t page = core::page_size();
  const std::string who = "region '" + o.name + "'";
  // Values outside their enums first: everything below reads them.
  if (static_cast<unsigned>(o.policy) > static_cast<unsigned>(Policy::barrier)) {
    return Error(Errc::invalid_argument, who + ": unknown policy " + std::to_string(static_cast<unsigned>(o.policy)));
  }
  if (static_cast<unsigned>(o.backend) > static_cast<unsigned>(Backend::userfaultfd)) {
    return Error(Errc::invalid_argument, who + ": unknown backend " + std::to_string(static_cast<unsigned>(o.backend)));
  }
  if (static_cast<unsigned>(o.userfaultfd_mode) > static_cast<unsigned>(UserfaultfdMode::self_service)) {
    return Error(Errc::invalid_argument, who + ": unknown userfaultfd mode " +
                                             std::to_string(static_cast<unsigned>(o.userfaultfd_mode)));
  }
  if (static_cast<unsigned>(o.dirty_tracking) > static_cast<unsigned>(DirtyTracking::sync_wp)) {  // the last
    return Error(Errc::invalid_argument, who + ": unknown dirty tracking " +
                                             std::to_string(static_cast<unsigned>(o.dirty_tracking)));
  }
  if (static_cast<unsigned>(o.fill_path) > static_cast<unsigned>(FillPath::shmem_cache)) {  // the last
    return Error(Errc::invalid_argument, who + ": unknown fill path " + std::to_string(static_cast<unsigned>(o.fill_path)));
  }
  if (o.fill_path == FillPath::shmem_cache &&
      (o.policy != Policy::provider || o.backend == Backend::signals ||
       o.userfaultfd_mode != UserfaultfdMode::handler_thread || o.huge_pages)) {
    return Error(Errc::invalid_argument, who + ": FillPath::shmem_cache is for provider regions on userfaultfd in "
                                               "handler-thread mode, without huge_pages");
  }
  if (size == 0) return Error(Errc::invalid_argument, who + ": size is zero");
  if (!core::is_aligned(size, page)) {
    return Error(Errc::invalid_argument, who + ": size " + std::to_string(size) +
                                             " is not a multiple of the page size " + std::to_string(page));
  }
  if ((o.perms & ~static_cast<unsigned>(perm_read | perm_write | perm_exec)) != 0) {
    return Error(Errc::invalid_argument, who + ": unknown permission bits");
  }
  if (o.policy != Policy::guard && o.policy != Policy::barrier && o.perms == perm_none) {
    return Error(Errc::invalid_argument, who + ": a " + policy_name(o.policy) + " region needs at least one permission");
  }
  if (o.policy == Policy::track_dirty && !(o.perms & perm_write)) {
    return Error(Errc::invalid_argument, who + ": track_dirty needs perm_write");
  }
  if (o.policy == Policy::barrier && o.barrier == nullptr) {
    return Error(Errc::invalid_argument, who + ": the barrier policy needs a barrier function");
  }
  if (o.policy != Policy::barrier && o.barrier != nullptr) {
    return Error(Errc::invalid_argument, who + ": a barrier function is only for Policy::barrier");
  }
  if (o.fault_around == 0 || o.fault_around > 512) {
    return Error(Errc::invalid_argument, who + ": fault_around must be 1..512 pages");
  }
  if (o.huge_pages) {
    // Two kinds of 2 MiB pages: transparent huge pages on the signal backend (zero_fill), and reserved
    // hugetlbfs pages on userfaultfd (zero_fill and provider, filled a whole huge page at a time).
    const bool hugetlb = o.backend == Backend::userfaultfd || o.policy == Policy::provider;
    if (o.policy != Policy::zero_fill && o.policy != Policy::provider) {
      return Error(Errc::unsupported, who + ": huge_pages is for zero_fill regions (and provider regions on "
                                            "userfaultfd's hugetlbfs pages)");
    }
    if (size % core::kHugePage != 0) {
      return Error(Errc::invalid_argument, who + ": with huge_pages the size must be a multiple of 2 MiB");
    }
    if (hugetlb) {
      if (o.backend == Backend::signals) {
        return Error(Errc::unsupported, who + ": huge_pages for a provider region needs Backend::userfaultfd "
                                              "(hugetlbfs pages); the signal backend's huge pages are zero_fill only");
      }
      if (o.userfaultfd_mode != UserfaultfdMode::handler_thread || o.write_back || o.max_resident_pages != 0 ||
          o.remote_pager_socket >= 0) {
        return Error(Errc::unsupported, who + ": huge_pages on userfaultfd (hugetlbfs) is served by the handler "
                                              "thread, without write-back, max_resident_pages or a remote pager");
      }
    } else {
      std::string thp;
      if (FILE* f = std::fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r")) {
        char line[128] = {};
        if (std::fgets(line, sizeof line, f) != nullptr) thp = line;
        std::fclose(f);
      }
      if (thp.find("[always]") == std::string::npos && thp.find("[madvise]") == std::string::npos) {
        return Error(Errc::unsupported, who + ": huge_pages needs transparent huge pages, which this kernel has " +
                                              (thp.empty() ? std::string("not") : "set to \"" + thp.substr(0, thp.find('\n')) + "\""));
      }
    }
  }
  const bool filled = o.policy == Policy::provider || o.policy == Policy::pager;
  if (o.max_resident_pages != 0 && !filled) {
    return Error(Errc::invalid_argument, who + ": max_resident_pages is for provider and pager regions");
  }
  if (o.write_back && !filled) {
    return Error(Errc::invalid_argument, who + ": write_back is for provider and pager regions");
  }
  if (o.write_back && (o.store == nullptr || !o.store->writable())) {
    return Error(Errc::invalid_argument, who + ": write_back needs a writable store");
  }
  if (o.store != nullptr && o.fill != nullptr) {
    return Error(Errc::invalid_argument, who + ": give a store or a fill function, not both");
  }
  if (o.remote_pager_uid < -1 || o.remote_pager_pid < 0) {
    return Error(Errc::invalid_argument, who + ": remote_pager_uid must be -1 or a uid, remote_pager_pid 0 or a pid");
  }
  if (o.remote_pager_socket >= 0) {
    // Say which condition the options break, not all of them at once.
    const char* wrong = o.policy != Policy::pager                     ? "the policy is not Policy::pager"
                        : o.fill != nullptr || o.store != nullptr     ? "the options also give a store or a fill function"
                        : o.pager.valid()                             ? "the options also give a Pager"
                        : o.backend == Backend::signals               ? "Backend::signals was asked for (the pager "
                                                                        "process resolves faults through userfaultfd)"
                                                                      : nullptr;
    if (wrong != nullptr) {
      return Error(Errc::invalid_argument, who + ": remote_pager_socket: " + wrong);
    }
    return {};
  }
  const bool has_source = o.store != nullptr || o.fill != nullptr;
  if (filled && !has_source) {
    return Error(Errc::invalid_argument, who + ": the " + policy_name(o.policy) + " policy needs a store or a fill function");
  }
  if (!filled && has_source) {
    return Error(Errc::invalid_argument, who + ": a store or fill function is only for Policy::provider and Policy::pager");
  }
  if (o.policy == Policy::pager && !o.pager.valid()) {
    return Error(Errc::invalid_argument, who + ": the pager policy needs a started Pager");
  }
  if (o.policy != Policy::pager && o.pager.valid()) {
    return Error(Errc::invalid_argument, who + ": a Pager is only for Policy::pager");
  }
  if (o.readahead_max == 0 || o.readahead_max > 512) {
    return Error(Errc::invalid_argument, who + ": readahead_max must be 1..512 pages");
  }
  if (o.fill_timeout < std::chrono::milliseconds(1) || o.fill_timeout > std::chrono::hours(1)) {
    return Error(Errc::invalid_argument, who + ": fill_timeout must be 1 ms .. 1 hour");
  }
  return {};
}

// Attaches and publishes a new region's record. On failure nothing of it is left: not in the table, not
// attached (the caller unmaps what it mapped).
Result<RegionImpl*> register_region(std::unique_ptr<RegionImpl>& r) {
  if (auto inst = install(); !inst) return std::move(inst).error();
  {
    // The regions' handler, once, before the table's lock: the trap's lock comes first in faultline's
    // lock order (its fork hook takes it first), never inside the table's.
    std::lock_guard once(g_handler_mutex);
    if (!g_handler_added) {
      region::register_fork_hooks();
      // SIGSEGV for the signal backend; SIGBUS for self-service userfaultfd regions (and to name the
      // region in reports of poisoned pages).
      auto id = add_handler(region::handle_fault, nullptr, trap_memory, region::describe);
      if (!id) return std::move(id).error();
      g_handler_added = true;
    }
  }
  std::lock_guard lock(region::table_mutex());
  if (const RegionImpl* other = region::find_overlap(r->base, r->end)) {
    return Error(Errc::already_exists, "region '" + std::string(r->name) + "' " + range_text(r->base, r->end - r->base) +
                                           " overlaps region '" + other->name + "' " +
                                           range_text(other->base, other->end - other->base));
  }
  if (auto a = r->attach(); !a) return a.error();
  if (auto ins = region::insert(r.get()); !ins) {
    r->release_helpers();
    r->detach();
    return std::move(ins).error();
  }
  if (stats_asked()) print_stats();
  return r.release();
}

}  // namespace

Result<Region> reserve_region(std::size_t size, const RegionOptions& opts) {
  return core::guarded([&]() -> Result<Region> {
    if (auto v = validate(size, opts); !v) return std::move(v).error();
    auto choice = backend::select(opts, false);
    if (!choice) return std::move(choice).error();
    auto impl = backend::create(choice.value(), size, opts);
    if (!impl) return std::move(impl).error();
    auto r = register_region(impl.value());
    if (!r) {
      impl.value()->unmap();
      return std::move(r).error();
    }
    return Region(r.value());
  });
}

Result<BackendChoice> explain_backend(const RegionOptions& opts) {
  return core::guarded([&]() -> Result<BackendChoice> {
    if (auto v = validate(core::page_size(), opts); !v) return std::move(v).error();
    auto choice = backend::select(opts, false);
    if (!choice) return std::move(choice).error();
    return BackendChoice{choice->backend, choice->reason};
  });
}

Result<Region> adopt_region(void* addr, std::size_t size, const RegionOptions& opts) {
  return core::guarded([&]() -> Result<Region> {
    if (addr == nullptr) return Error(Errc::invalid_argument, "adopt_region '" + opts.name + "': address is null");
    if (opts.huge_pages) return Error(Errc::unsupported, "adopt_region: huge_pages needs reserve_region()");
    if (auto v = validate(size, opts); !v) return std::move(v).error();
    if (opts.policy == Policy::provider || opts.policy == Policy::pager) {
      return Error(Errc::unsupported, "adopt_region '" + opts.name + "': the " + policy_name(opts.policy) +
                                          " policy fills pages through a second view of memory faultline maps itself; "
                                          "use reserve_region");
    }
    const auto base = reinterpret_cast<std::uintptr_t>(addr);
    if (!core::is_aligned(base, core::page_size())) {
      return Error(Errc::invalid_argument, "adopt_region '" + opts.name + "': address " + hex(base) + " is not page-aligned");
    }
    if (base + size < base) {
      return Error(Errc::invalid_argument, "adopt_region '" + opts.name + "': " + range_text(base, size) +
                                               " wraps around the address space");
    }
    auto choice = backend::select(opts, true);
    if (!choice) return std::move(choice).error();
    auto impl = backend::adopt(choice.value(), addr, size, opts);
    auto r = register_region(impl);
    if (!r) return std::move(r).error();
    return Region(r.value());
  });
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
Backend Region::backend() const noexcept { return impl_ ? impl_->backend() : Backend::signals; }
const char* Region::backend_reason() const noexcept { return impl_ ? impl_->backend_reason.c_str() : ""; }

static RegionStats stats_of(const detail::RegionImpl& r) noexcept {
  RegionStats s;
  const auto& c = r.counters;
  const auto get = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  s.faults = get(c.faults);
  s.fills = get(c.fills);
  s.pages_filled = get(c.pages_filled);
  s.readahead_pages = get(c.readahead_pages);
  s.failures = get(c.failures);
  s.pages_evicted = get(c.pages_evicted);
  s.pages_written_back = get(c.pages_written_back);
  for (unsigned k = 0; k < 32; ++k) s.fill_ns_log2[k] = get(c.fill_ns_log2[k]);
  return s;
}

RegionStats Region::stats() const noexcept { return impl_ == nullptr ? RegionStats{} : stats_of(*impl_); }

std::uint64_t RegionStats::fill_ns_quantile(double q) const noexcept {
  std::uint64_t total = 0;
  for (std::uint64_t n : fill_ns_log2) total += n;
  if (total == 0) return 0;
  const double want = (q < 0 ? 0 : q > 1 ? 1 : q) * static_cast<double>(total);
  std::uint64_t seen = 0;
  for (unsigned k = 0; k < 32; ++k) {
    seen += fill_ns_log2[k];
    if (static_cast<double>(seen) >= want && seen > 0) return k >= 63 ? ~std::uint64_t{0} : (std::uint64_t{2} << k);
  }
  return std::uint64_t{2} << 31;
}

RegionInfo Region::info() const noexcept {
  if (impl_ == nullptr) return RegionInfo{"", 0, 0, Policy::guard, 0};
  return impl_->info();
}

// FAULTLINE_STATS (read as secure_getenv reads it): a line of each region's counters on stderr when it
// ends: "faultline stats: region 'heap': 12 faults, 12 fills of 768 pages (756 read ahead), ...", and at
// exit a summary (print_exit_summary).
static bool stats_asked() {
  static const bool asked = [] {
    const char* e = secure_getenv("FAULTLINE_STATS");
    return e != nullptr && *e != '\0' && std::strcmp(e, "0") != 0;
  }();
  return asked;
}

static void print_region_line(const char* name, const RegionStats& s, const char* when) {
  std::fprintf(stderr,
               "faultline stats: region '%s'%s: %llu faults, %llu fills of %llu pages (%llu read ahead), %llu failed, "
               "%llu pages evicted, %llu written back; fill p50 %llu ns, p99 %llu ns\n",
               name, when, static_cast<unsigned long long>(s.faults), static_cast<unsigned long long>(s.fills),
               static_cast<unsigned long long>(s.pages_filled), static_cast<unsigned long long>(s.readahead_pages),
               static_cast<unsigned long long>(s.failures), static_cast<unsigned long long>(s.pages_evicted),
               static_cast<unsigned long long>(s.pages_written_back),
               static_cast<unsigned long long>(s.fill_ns_quantile(0.5)),
               static_cast<unsigned long long>(s.fill_ns_quantile(0.99)));
}

// print_stats() was called: as if FAULTLINE_STATS were set.
static std::atomic<bool> g_print_stats{false};

static void print_stats_if_asked(const detail::RegionImpl& r, const RegionStats& s) {
  if (stats_asked() || g_print_stats.load(std::memory_order_relaxed)) print_region_line(r.name, s, "");
}

namespace {

// FAULTLINE_STATS at exit: the dispatcher's counters for each signal that reached it, the regions still
// registered (up to 32 of them; skipped if another thread holds the table's lock as the process exits),
// and each userfaultfd handler thread's share. Runs from atexit (not signal context).
void print_exit_summary() {
  static const struct {
    int sig;
    const char* name;
  } kSignals[] = {{SIGSEGV, "SIGSEGV"}, {SIGBUS, "SIGBUS"}, {SIGILL, "SIGILL"}, {SIGFPE, "SIGFPE"},
                  {SIGTRAP, "SIGTRAP"}, {SIGABRT, "SIGABRT"}};
  for (const auto& k : kSignals) {
    const TrapCounters c = counters(k.sig);
    if (c.seen == 0) continue;
    std::fprintf(stderr, "faultline stats: %s: %llu seen, %llu resolved, %llu passed on, %llu stack overflows\n", k.name,
                 static_cast<unsigned long long>(c.seen), static_cast<unsigned long long>(c.resolved),
                 static_cast<unsigned long long>(c.passed), static_cast<unsigned long long>(c.stack_overflows));
  }
  std::unique_lock lock(region::table_mutex(), std::try_to_lock);
  if (lock.owns_lock()) {
    std::size_t shown = 0, left = 0;
    if (const region::Top* top = region::g_top.load(std::memory_order_acquire); top != nullptr) {
      for (const region::Leaf* leaf : top->leaf) {
        for (std::size_t i = 0; i < leaf->n; ++i) {
          if (shown == 32) {
            ++left;
            continue;
          }
          print_region_line(leaf->r[i]->name, stats_of(*leaf->r[i]), " (still registered at exit)");
          ++shown;
        }
      }
    }
    if (left != 0) std::fprintf(stderr, "faultline stats: and %zu more regions\n", left);
  }
  const std::vector<ThreadStats> handlers = userfaultfd_handler_thread_stats();
  for (std::size_t i = 0; i < handlers.size(); ++i) {
    const ThreadStats& t = handlers[i];
    std::fprintf(stderr,
                 "faultline stats: userfaultfd handler thread %zu (tid %ld): %llu faults, %llu fills of %llu pages, "
                 "%llu failed; %llu ns a fill\n",
                 i + 1, t.tid, static_cast<unsigned long long>(t.faults), static_cast<unsigned long long>(t.fills),
                 static_cast<unsigned long long>(t.pages_filled), static_cast<unsigned long long>(t.failures),
                 static_cast<unsigned long long>(t.fills != 0 ? t.fill_ns / t.fills : 0));
  }
}

}  // namespace

void print_stats() {
  static std::once_flag once;
  std::call_once(once, [] {
    g_print_stats.store(true, std::memory_order_relaxed);
    std::atexit(print_exit_summary);
  });
}

Result<void> Region::reset() {
  return core::guarded([&]() -> Result<void> {
    if (impl_ == nullptr) return {};
    if (in_handler()) return Error(Errc::busy, "Region::reset: called from inside a fault handler");
    print_stats_if_asked(*impl_, stats());
    {
      std::lock_guard lock(region::table_mutex());
      if (auto e = region::erase(impl_); !e) return e;
    }
    // Out of the table: no new fault can reach the region. Threads still working on it hold pins (a fill
    // in progress, a pager request abandoned by its faulting thread, a helper thread): ask the helpers to
    // let go and wait for every pin, outside the table's lock (a handler that pins it may register a
    // region). In a forked child the pins of the parent's threads are not waited for.
    impl_->release_helpers();
    const std::uint32_t floor = impl_->inherited.load(std::memory_order_acquire) ? impl_->inherited_pins : 0;
    for (int i = 0; impl_->inflight.load(std::memory_order_acquire) > floor; ++i) {
      if (i == 10000) {
        impl_ = nullptr;  // leak the region rather than free what another thread still uses
        return Error(Errc::timed_out, "Region::reset: a fill or pager request for this region did not finish in 10 s; "
                                      "the region is unregistered and its memory left mapped");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    // Never act on memory that is no longer the mapping faultline made: a program that unmapped the
    // region behind faultline's back may have mapped something else there since.
    const bool ours = impl_->memory_is_ours();
    Result<void> out;
    if (ours) {
      impl_->detach();
      impl_->unmap();
    } else {
      out = impl_->refuse_if_not_ours("Region::reset");
    }
    delete impl_;
    impl_ = nullptr;
    return out;
  });
}

Result<std::vector<std::size_t>> Region::collect_dirty(ProtectBatch* defer) {
  return core::guarded([&]() -> Result<std::vector<std::size_t>> {
    if (impl_ == nullptr) return Error(Errc::invalid_argument, "collect_dirty: empty region handle");
    if (impl_->policy != Policy::track_dirty) {
      return Error(Errc::invalid_argument, std::string("collect_dirty: region '") + impl_->name + "' has policy " +
                                               policy_name(impl_->policy) + ", not track_dirty");
    }
    if (auto c = impl_->refuse_if_inherited("collect_dirty"); !c) return c.error();
    if (auto c = impl_->refuse_if_not_ours("collect_dirty"); !c) return c.error();
    std::vector<std::size_t> pages;
    if (auto c = impl_->collect_dirty(pages, defer); !c) return c.error();
    return pages;
  });
}

Result<void> Region::protect(std::size_t first_page, std::size_t count, unsigned perms) {
  return core::guarded([&]() -> Result<void> {
    if (impl_ == nullptr) return Error(Errc::invalid_argument, "protect: empty region handle");
    if (auto c = impl_->refuse_if_inherited("protect"); !c) return c;
    if (auto c = impl_->check_range(first_page, count, perms, "protect"); !c) return c;
    return impl_->protect(first_page, count, perms);
  });
}

Result<void> Region::discard(std::size_t first_page, std::size_t count) {
  return core::guarded([&]() -> Result<void> {
    if (impl_ == nullptr) return Error(Errc::invalid_argument, "discard: empty region handle");
    if (auto c = impl_->refuse_if_inherited("discard"); !c) return c;
    if (auto c = impl_->check_range(first_page, count, perm_none, "discard"); !c) return c;
    if (auto c = impl_->refuse_if_not_ours("discard"); !c) return c;
    return impl_->discard(first_page, count);
  });
}

namespace {

Result<void> check_write_back(const RegionImpl* r, const char* what) {
  if (r == nullptr) return Error(Errc::invalid_argument, std::string(what) + ": empty region handle");
  if (auto c = r->refuse_if_inherited(what); !c) return c;
  if (!r->write_back_enabled) {
    return Error(Errc::invalid_argument, std::string(what) + ": region '" + r->name + "' has no write-back");
  }
  return {};
}

}  // namespace

Result<std::size_t> Region::flush() {
  return core::guarded([&]() -> Result<std::size_t> {
    if (auto c = check_write_back(impl_, "flush"); !c) return c.error();
    return impl_->write_back(0, impl_->pages());
  });
}

Result<std::size_t> Region::evict(std::size_t first_page, std::size_t count) {
  return core::guarded([&]() -> Result<std::size_t> {
    if (impl_ == nullptr) return Error(Errc::invalid_argument, "evict: empty region handle");
    if (impl_->policy != Policy::provider && impl_->policy != Policy::pager) {
      return Error(Errc::invalid_argument, std::string("evict: region '") + impl_->name + "' has policy " +
                                               policy_name(impl_->policy) + ", not provider or pager");
    }
    if (auto c = impl_->refuse_if_inherited("evict"); !c) return c.error();
    if (auto c = impl_->check_range(first_page, count, perm_none, "evict"); !c) return c.error();
    if (auto c = impl_->refuse_if_not_ours("evict"); !c) return c.error();
    return impl_->evict(first_page, count);
  });
}

Result<void> prefault(const void* addr, std::size_t len, Access access) {
  return core::guarded([&]() -> Result<void> {
    if (addr == nullptr || len == 0) return Error(Errc::invalid_argument, "prefault: empty range");
    if (access != Access::read && access != Access::write) {
      return Error(Errc::invalid_argument, "prefault: the access must be Access::read or Access::write");
    }
    const auto start = reinterpret_cast<std::uintptr_t>(addr);
    if (start + len < start) return Error(Errc::invalid_argument, "prefault: " + range_text(start, len) + " wraps around");
    const std::uintptr_t end = start + len;
    const std::size_t page = core::page_size();
    // The regions that meet the range, pinned so that they outlive the table lock; gaps between them
    // cost nothing, whatever the range's size. A region's own rules apply: a forbidden access is refused
    // here, before any page is touched, rather than crashing.
    struct Part {
      RegionImpl* r;
      std::uintptr_t from, to;
    };
    std::vector<Part> parts;
    {
      std::lock_guard lock(region::table_mutex());
      const region::Top* top = region::g_top.load(std::memory_order_acquire);
      for (const region::Leaf* leaf : top != nullptr ? top->leaf : std::vector<const region::Leaf*>{}) {
        for (std::size_t i = 0; i < leaf->n; ++i) {
          if (leaf->end[i] <= start || leaf->base[i] >= end) continue;
          RegionImpl* r = leaf->r[i];
          const bool ok = access == Access::write ? (r->perms & perm_write) : (r->perms & perm_read);
          if (!ok || r->policy == Policy::guard) {
            for (const Part& q : parts) region::unpin(q.r);
            return Error(Errc::invalid_argument, std::string("prefault: region '") + r->name + "' does not allow " +
                                                     access_name(access) + " at " + hex(std::max(start, r->base)));
          }
          r->inflight.fetch_add(1, std::memory_order_acq_rel);
          parts.push_back(Part{r, std::max(start, leaf->base[i]), std::min(end, leaf->end[i])});
        }
      }
    }
    // Touch each page the way the system call will; faults are resolved by the regions' policies.
    for (const Part& q : parts) {
      for (std::uintptr_t p = core::align_down(q.from, page); p < q.to; p += page) {
        if (access == Access::write) {
          __atomic_fetch_add(reinterpret_cast<volatile char*>(p), 0, __ATOMIC_RELAXED);  // write without changing
        } else {
          (void)*reinterpret_cast<const volatile char*>(p);
        }
      }
      region::unpin(q.r);
    }
    return {};
  });
}

std::size_t region_count() {
  std::lock_guard lock(region::table_mutex());
  return region::count();
}

}  // namespace faultline
