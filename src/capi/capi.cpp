// capi/capi.cpp: the C interface (faultline/faultline.h) over the C++ library. Not signal path; the
// functions that may run in signal context live in capi_sig.cpp. No exception leaves this file.
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

#include "capi/capi.hpp"
#include "faultline/remote_pager.hpp"
#include "faultline/report.hpp"
#include "faultline/store.hpp"
#include "faultline/thread.hpp"
#include "faultline/world.hpp"

using namespace faultline;
using faultline::capi::HandlerBox;
using faultline::capi::PreemptBox;
using faultline::capi::RegionBox;

struct fl_pager {
  Pager pager;
};

struct fl_region {
  Region region;
  std::unique_ptr<RegionBox> box;
};

struct fl_store {
  std::unique_ptr<Store> store;
};

struct fl_protect_batch {
  ProtectBatch batch;
};

struct fl_remote_region {
  remote_pager::RemoteRegion region;
};

namespace {

int set_error(fl_error* err, int code, const char* message) {
  if (err != nullptr) {
    err->code = code;
    std::snprintf(err->message, sizeof err->message, "%s", message);
  }
  return code;
}

int fail(fl_error* err, const Error& e) { return set_error(err, -static_cast<int>(e.code()), e.message().c_str()); }

int ok(fl_error* err) {
  if (err != nullptr) {
    err->code = 0;
    err->message[0] = '\0';
  }
  return 0;
}

int result(const Result<void>& r, fl_error* err) { return r ? ok(err) : fail(err, r.error()); }

// Runs `body`, turning any exception (allocation failure) into FL_ESYSTEM.
template <class F>
int guarded(fl_error* err, F body) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return set_error(err, FL_ESYSTEM, "out of memory");
  } catch (const std::exception& e) {
    return set_error(err, FL_ESYSTEM, e.what());
  } catch (...) {
    return set_error(err, FL_ESYSTEM, "unexpected exception");
  }
}

std::mutex g_handlers_mutex;
std::map<std::pair<std::uint32_t, std::uint32_t>, std::unique_ptr<HandlerBox>> g_handlers;

thread_local std::vector<ThreadAttachment> t_attachments;
thread_local std::unique_ptr<PreemptBox> t_preempt;

RegionOptions to_cxx(const fl_region_options* o, RegionBox* box) {
  RegionOptions r;
  r.name = o->name != nullptr ? o->name : "region";
  r.policy = static_cast<Policy>(o->policy);
  r.perms = o->perms;
  r.fault_around = o->fault_around == 0 ? 1 : o->fault_around;
  if (o->barrier != nullptr) {
    box->barrier = o->barrier;
    box->barrier_data = o->barrier_data;
    r.barrier = capi::barrier_adapter;
    r.barrier_data = box;
  }
  if (o->fill != nullptr) {
    box->fill = o->fill;
    box->fill_data = o->fill_data;
    r.fill = capi::fill_adapter;
    r.fill_data = box;
  }
  if (o->pager != nullptr) r.pager = o->pager->pager;
  if (o->fill_timeout_ms != 0) r.fill_timeout = std::chrono::milliseconds(o->fill_timeout_ms);
  r.backend = static_cast<Backend>(o->backend);
  if (o->store != nullptr) r.store = o->store->store.get();
  if (o->readahead_max != 0) r.readahead_max = o->readahead_max;
  r.userfaultfd_mode = static_cast<UserfaultfdMode>(o->userfaultfd_mode);
  r.write_back = o->write_back != 0;
  r.max_resident_pages = o->max_resident_pages;
  r.huge_pages = o->huge_pages != 0;
  r.async_readahead = o->async_readahead != 0;
  r.remote_pager_socket = o->remote_pager_socket;
  // Out of range: a value reserve_region refuses ("unknown fill path").
  r.fill_path = o->fill_path >= 0 && o->fill_path <= FL_FILL_PATH_SHMEM_CACHE ? static_cast<FillPath>(o->fill_path)
                                                                              : static_cast<FillPath>(0xff);
  return r;
}

int make_region(bool adopt, void* addr, size_t size, const fl_region_options* opts, fl_region** out, fl_error* err) {
  if (opts == nullptr || out == nullptr) return set_error(err, FL_EINVAL, "fl_region: null options or out");
  if (static_cast<unsigned>(opts->policy) > FL_POLICY_BARRIER) return set_error(err, FL_EINVAL, "fl_region: unknown policy");
  if (static_cast<unsigned>(opts->backend) > FL_BACKEND_USERFAULTFD) return set_error(err, FL_EINVAL, "fl_region: unknown backend");
  if (static_cast<unsigned>(opts->userfaultfd_mode) > FL_UFFD_SELF_SERVICE) {
    return set_error(err, FL_EINVAL, "fl_region: unknown userfaultfd mode");
  }
  return guarded(err, [&] {
    auto box = std::make_unique<RegionBox>();
    RegionOptions o = to_cxx(opts, box.get());
    auto r = adopt ? adopt_region(addr, size, o) : reserve_region(size, o);
    if (!r) return fail(err, r.error());
    *out = new fl_region{std::move(r.value()), std::move(box)};
    return ok(err);
  });
}

}  // namespace

extern "C" {

const char* fl_errc_name(int code) { return errc_name(static_cast<Errc>(code < 0 ? -code : code)); }

int fl_install(unsigned signals, fl_error* err) {
  return guarded(err, [&] {
    InstallOptions o;
    o.signals = signals == 0 ? trap_memory : signals;
    return result(install(o), err);
  });
}

int fl_uninstall(int force, fl_error* err) {
  return guarded(err, [&] { return result(uninstall(force != 0), err); });
}

int fl_reassert(fl_error* err) {
  return guarded(err, [&] { return result(reassert(), err); });
}

int fl_add_handler(fl_handler fn, void* data, unsigned signals, fl_handler_id* id_out, fl_error* err) {
  if (fn == nullptr || id_out == nullptr) return set_error(err, FL_EINVAL, "fl_add_handler: null handler or id");
  return guarded(err, [&] {
    auto box = std::make_unique<HandlerBox>(HandlerBox{fn, data});
    auto id = add_handler(capi::handler_adapter, box.get(), signals == 0 ? trap_memory : signals);
    if (!id) return fail(err, id.error());
    std::lock_guard lock(g_handlers_mutex);
    g_handlers[{id->slot, id->generation}] = std::move(box);
    *id_out = fl_handler_id{id->slot, id->generation};
    return ok(err);
  });
}

int fl_remove_handler(fl_handler_id id, fl_error* err) {
  return guarded(err, [&] {
    auto r = remove_handler(HandlerId{id.slot, id.generation});
    if (!r) return fail(err, r.error());
    std::lock_guard lock(g_handlers_mutex);
    g_handlers.erase({id.slot, id.generation});  // no thread runs the handler any more
    return ok(err);
  });
}

int fl_pager_start(const char* name, unsigned threads, fl_pager** out, fl_error* err) {
  if (out == nullptr) return set_error(err, FL_EINVAL, "fl_pager_start: null out");
  return guarded(err, [&] {
    PagerOptions o;
    o.name = name != nullptr ? name : "pager";
    o.threads = threads;
    auto p = Pager::start(o);
    if (!p) return fail(err, p.error());
    *out = new fl_pager{std::move(p.value())};
    return ok(err);
  });
}

void fl_pager_release(fl_pager* pager) { delete pager; }

fl_region_options fl_region_options_default(void) {
  fl_region_options o;
  std::memset(&o, 0, sizeof o);
  o.policy = FL_POLICY_ZERO_FILL;
  o.perms = FL_PERM_READ | FL_PERM_WRITE;
  o.fault_around = 1;
  o.async_readahead = 1;
  o.remote_pager_socket = -1;
  return o;
}

int fl_region_reserve(size_t size, const fl_region_options* opts, fl_region** out, fl_error* err) {
  return make_region(false, nullptr, size, opts, out, err);
}

int fl_region_adopt(void* addr, size_t size, const fl_region_options* opts, fl_region** out, fl_error* err) {
  return make_region(true, addr, size, opts, out, err);
}

int fl_region_destroy(fl_region* region, fl_error* err) {
  if (region == nullptr) return ok(err);
  return guarded(err, [&] {
    auto r = region->region.reset();
    if (!r) return fail(err, r.error());
    delete region;
    return ok(err);
  });
}

void* fl_region_data(const fl_region* region) { return region != nullptr ? region->region.data() : nullptr; }
size_t fl_region_size(const fl_region* region) { return region != nullptr ? region->region.size() : 0; }

int fl_region_collect_dirty(fl_region* region, size_t* pages, size_t cap, size_t* count, fl_error* err) {
  if (region == nullptr || count == nullptr || (pages == nullptr && cap != 0)) {
    return set_error(err, FL_EINVAL, "fl_region_collect_dirty: null region, count or pages");
  }
  return guarded(err, [&] {
    auto r = region->region.collect_dirty();
    if (!r) return fail(err, r.error());
    *count = r->size();
    for (size_t i = 0; i < r->size() && i < cap; ++i) pages[i] = (*r)[i];
    return ok(err);
  });
}

int fl_region_protect(fl_region* region, size_t first_page, size_t count, unsigned perms, fl_error* err) {
  if (region == nullptr) return set_error(err, FL_EINVAL, "fl_region_protect: null region");
  return guarded(err, [&] { return result(region->region.protect(first_page, count, perms), err); });
}

int fl_region_discard(fl_region* region, size_t first_page, size_t count, fl_error* err) {
  if (region == nullptr) return set_error(err, FL_EINVAL, "fl_region_discard: null region");
  return guarded(err, [&] { return result(region->region.discard(first_page, count), err); });
}

fl_backend fl_region_backend(const fl_region* region) {
  return region != nullptr ? static_cast<fl_backend>(region->region.backend()) : FL_BACKEND_AUTOMATIC;
}

const char* fl_region_backend_reason(const fl_region* region) {
  return region != nullptr ? region->region.backend_reason() : "";
}

int fl_region_flush(fl_region* region, size_t* written, fl_error* err) {
  if (region == nullptr) return set_error(err, FL_EINVAL, "fl_region_flush: null region");
  return guarded(err, [&] {
    auto r = region->region.flush();
    if (!r) return fail(err, r.error());
    if (written != nullptr) *written = *r;
    return ok(err);
  });
}

int fl_region_evict(fl_region* region, size_t first_page, size_t count, size_t* written_back, fl_error* err) {
  if (region == nullptr) return set_error(err, FL_EINVAL, "fl_region_evict: null region");
  return guarded(err, [&] {
    auto r = region->region.evict(first_page, count);
    if (!r) return fail(err, r.error());
    if (written_back != nullptr) *written_back = *r;
    return ok(err);
  });
}

int fl_protect_batch_create(fl_protect_batch** out, fl_error* err) {
  if (out == nullptr) return set_error(err, FL_EINVAL, "fl_protect_batch_create: null out");
  return guarded(err, [&] {
    *out = new fl_protect_batch{};
    return ok(err);
  });
}

int fl_protect_batch_add(fl_protect_batch* batch, const fl_region* region, size_t first_page, size_t count,
                         unsigned perms, fl_error* err) {
  if (batch == nullptr || region == nullptr) return set_error(err, FL_EINVAL, "fl_protect_batch_add: null batch or region");
  return guarded(err, [&] { return result(batch->batch.add(region->region, first_page, count, perms), err); });
}

int fl_protect_batch_commit(fl_protect_batch* batch, size_t* calls, fl_error* err) {
  if (batch == nullptr) return set_error(err, FL_EINVAL, "fl_protect_batch_commit: null batch");
  return guarded(err, [&] {
    auto r = batch->batch.commit();
    if (!r) return fail(err, r.error());
    if (calls != nullptr) *calls = *r;
    return ok(err);
  });
}

void fl_protect_batch_destroy(fl_protect_batch* batch) {
  try {
    delete batch;  // commits what is left
  } catch (...) {
  }
}

int fl_file_store_open(const char* path, uint64_t offset, int writable, fl_store** out, fl_error* err) {
  if (path == nullptr || out == nullptr) return set_error(err, FL_EINVAL, "fl_file_store_open: null path or out");
  return guarded(err, [&] {
    auto s = FileStore::open(path, offset, writable != 0);
    if (!s) return fail(err, s.error());
    *out = new fl_store{std::make_unique<FileStore>(std::move(s.value()))};
    return ok(err);
  });
}

void fl_store_destroy(fl_store* store) { delete store; }

int fl_remote_pager_receive(int socket, fl_remote_region** out, fl_error* err) {
  if (out == nullptr) return set_error(err, FL_EINVAL, "fl_remote_pager_receive: null out");
  return guarded(err, [&] {
    auto r = remote_pager::receive(socket);
    if (!r) return fail(err, r.error());
    *out = new fl_remote_region{std::move(r.value())};
    return ok(err);
  });
}

const char* fl_remote_region_name(const fl_remote_region* region) {
  return region != nullptr ? region->region.description().name : "";
}
uint64_t fl_remote_region_base(const fl_remote_region* region) {
  return region != nullptr ? region->region.description().base : 0;
}
uint64_t fl_remote_region_size(const fl_remote_region* region) {
  return region != nullptr ? region->region.description().size : 0;
}

int fl_remote_region_serve(fl_remote_region* region, fl_fill_fn fill, void* data, int (*stop)(void*), void* stop_data,
                           fl_error* err) {
  if (region == nullptr || fill == nullptr) return set_error(err, FL_EINVAL, "fl_remote_region_serve: null region or fill");
  return guarded(err, [&] {
    RegionBox box;
    box.fill = fill;
    box.fill_data = data;
    struct Stop {
      int (*fn)(void*);
      void* data;
    } st{stop, stop_data};
    const auto stop_adapter = [](void* p) {
      auto* s = static_cast<Stop*>(p);
      return s->fn != nullptr && s->fn(s->data) != 0;
    };
    return result(region->region.serve(capi::fill_adapter, &box, stop_adapter, &st), err);
  });
}

void fl_remote_region_destroy(fl_remote_region* region) { delete region; }

void fl_region_get_stats(const fl_region* region, fl_region_stats* out) {
  if (out == nullptr) return;
  *out = fl_region_stats{};
  if (region == nullptr) return;
  const RegionStats s = region->region.stats();
  out->faults = s.faults;
  out->fills = s.fills;
  out->pages_filled = s.pages_filled;
  out->readahead_pages = s.readahead_pages;
  out->failures = s.failures;
  out->pages_evicted = s.pages_evicted;
  out->pages_written_back = s.pages_written_back;
  for (unsigned k = 0; k < 32; ++k) out->fill_ns_log2[k] = s.fill_ns_log2[k];
}

size_t fl_handler_thread_stats(fl_thread_stats* out, size_t cap) {
  try {
    const std::vector<ThreadStats> all = userfaultfd_handler_thread_stats();
    for (std::size_t i = 0; i < all.size() && i < cap && out != nullptr; ++i) out[i] = capi::to_c(all[i]);
    return all.size();
  } catch (...) {
    return 0;
  }
}

int fl_set_userfaultfd_handler_threads(unsigned n, fl_error* err) {
  return guarded(err, [&] { return result(set_userfaultfd_handler_threads(n), err); });
}

unsigned fl_userfaultfd_handler_threads(void) { return userfaultfd_handler_threads(); }

int fl_prefault(const void* addr, size_t len, fl_access access, fl_error* err) {
  return guarded(err, [&] { return result(prefault(addr, len, static_cast<Access>(access)), err); });
}

size_t fl_region_count(void) {
  try {
    return region_count();
  } catch (...) {
    return 0;
  }
}

size_t fl_smallest_usable_altstack(void) { return faultline::smallest_usable_altstack(); }

int fl_thread_attach(size_t altstack_size, fl_error* err) {
  return guarded(err, [&] {
    AttachOptions o;
    o.altstack_size = altstack_size;
    auto a = attach_thread(o);
    if (!a) return fail(err, a.error());
    t_attachments.push_back(std::move(a.value()));
    return ok(err);
  });
}

void fl_thread_detach(void) {
  if (!t_attachments.empty()) t_attachments.pop_back();
}

int fl_thread_attached(void) { return thread_attached() ? 1 : 0; }

int fl_world_stop(unsigned timeout_ms, fl_error* err) {
  return guarded(err, [&] {
    world::StopOptions o;
    if (timeout_ms != 0) o.timeout = std::chrono::milliseconds(timeout_ms);
    return result(world::stop(o), err);
  });
}

int fl_world_resume(fl_error* err) {
  return guarded(err, [&] { return result(world::resume(), err); });
}

int fl_world_stopped(void) { return world::stopped() ? 1 : 0; }

int fl_world_scan_roots(fl_root_visitor fn, void* data, fl_error* err) {
  if (fn == nullptr) return set_error(err, FL_EINVAL, "fl_world_scan_roots: null visitor");
  struct Box {
    fl_root_visitor fn;
    void* data;
  } box{fn, data};
  return guarded(err, [&] {
    return result(world::scan_roots(
                      [](const std::uintptr_t* b, const std::uintptr_t* e, world::RootKind k, long tid, void* d) {
                        auto* bx = static_cast<Box*>(d);
                        bx->fn(b, e, static_cast<fl_root_kind>(k), tid, bx->data);
                      },
                      &box),
                  err);
  });
}

void fl_blocking_enter(void) { (void)enter_blocking_region(); }
void fl_blocking_leave(void) { leave_blocking_region(); }

int fl_preempt_enable(uint64_t budget_ns, fl_preempt_handler fn, void* data, fl_clock clock, fl_error* err) {
  if (fn == nullptr) return set_error(err, FL_EINVAL, "fl_preempt_enable: null handler");
  return guarded(err, [&] {
    if (t_preempt == nullptr) t_preempt = std::make_unique<PreemptBox>();
    t_preempt->fn = fn;
    t_preempt->data = data;
    return result(preempt::enable(std::chrono::nanoseconds(static_cast<std::int64_t>(budget_ns)),
                                  capi::preempt_adapter, t_preempt.get(),
                                  clock == FL_CLOCK_WALL ? preempt::Clock::wall : preempt::Clock::cpu_time),
                  err);
  });
}

int fl_report_enable(int fd, int color, int backtrace, unsigned max_frames, fl_error* err) {
  return guarded(err, [&] {
    report::Options o;
    o.fd = fd;
    o.color = color < 0 ? report::Color::automatic : color == 0 ? report::Color::never : report::Color::always;
    o.backtrace = backtrace != 0;
    if (max_frames != 0) o.max_frames = max_frames;
    return result(report::enable(o), err);
  });
}

void fl_report_disable(void) { report::disable(); }
int fl_report_enabled(void) { return report::enabled() ? 1 : 0; }

const char* fl_version(void) { return "0.1.0"; }

}  // extern "C"
