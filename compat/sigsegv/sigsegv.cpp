// compat/sigsegv/sigsegv.cpp: libsigsegv's installation and dispatcher-registration calls on faultline.
// Not signal path (sigsegv_sig.cpp is).
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <new>
#include <thread>

#include "compat/sigsegv/sigsegv_impl.hpp"
#include "faultline/thread.hpp"

namespace faultline::compat {
namespace {

std::mutex g_mutex;
HandlerId g_id;
bool g_registered = false;

// Publishes `next` and frees the old table once no sigsegv_dispatch can still read it (bounded: a
// reader stuck for 10 s means leaking the old table rather than freeing it under a reader).
void publish(DispatcherImpl& d, const AreaTable* next) {
  const AreaTable* old = d.table.exchange(next, std::memory_order_acq_rel);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  const bool quiet = d.epoch.synchronize([&] {
    std::this_thread::yield();
    return std::chrono::steady_clock::now() < deadline;
  });
  if (quiet) delete old;
}

// The exception wall of the C entry points: no exception leaves `body`. One becomes `on_throw`, the
// call's failure value (-1, a null ticket); a call that returns nothing drops it.
template <class R, class F>
R c_entry(R on_throw, F&& body) noexcept {
  try {
    return body();
  } catch (...) {
    return on_throw;
  }
}
template <class F>
void c_entry(F&& body) noexcept {
  try {
    body();
  } catch (...) {
  }
}

}  // namespace
}  // namespace faultline::compat

using namespace faultline;
using namespace faultline::compat;

extern "C" {

int sigsegv_install_handler(sigsegv_handler_t handler) {
  return c_entry(-1, [&] {
    std::lock_guard lock(g_mutex);
    if (!install()) return -1;
    g_user.store(handler, std::memory_order_release);
    if (!g_registered) {
      auto id = add_handler(on_fault, nullptr, trap_memory);
      if (!id) return -1;
      g_id = *id;
      g_registered = true;
    }
    return 0;
  });
}

void sigsegv_deinstall_handler(void) {
  c_entry([] {
    std::lock_guard lock(g_mutex);
    g_user.store(nullptr, std::memory_order_release);
    if (g_registered && !in_handler() && remove_handler(g_id)) g_registered = false;
  });
}

int stackoverflow_install_handler(stackoverflow_handler_t handler, void* extra_stack, size_t extra_stack_size) {
  return c_entry(-1, [&] {
    if (handler == nullptr || extra_stack == nullptr) return -1;
    std::lock_guard lock(g_mutex);
    stack_t cur{};
    stack_t ss{};
    ss.ss_sp = extra_stack;
    ss.ss_size = extra_stack_size;
    if (sigaltstack(nullptr, &cur) == 0 && !(cur.ss_flags & SS_DISABLE)) {
      // The thread has an alternate stack already (it stays): the kernel still judges this one, as
      // libsigsegv's sigaltstack call would have it judged.
      if (sigaltstack(&ss, nullptr) != 0) return -1;
      cur.ss_flags &= ~SS_ONSTACK;
      (void)sigaltstack(&cur, nullptr);
    } else if (sigaltstack(&ss, nullptr) != 0) {
      return -1;  // what libsigsegv refuses too
    }
    // Attaches this thread, keeping the alternate stack just set; one smaller than
    // faultline::smallest_usable_altstack() (the CPU's signal frame and faultline's handler) is accepted
    // but replaced by faultline's own while the thread is attached (see AttachOptions).
    if (!install()) return -1;
    g_overflow.store(handler, std::memory_order_release);
    if (!set_stack_overflow_handler(on_overflow, nullptr)) return -1;
    return 0;
  });
}

void stackoverflow_deinstall_handler(void) {
  c_entry([] {
    std::lock_guard lock(g_mutex);
    g_overflow.store(nullptr, std::memory_order_release);
    (void)set_stack_overflow_handler(nullptr, nullptr);
  });
}

void sigsegv_init(sigsegv_dispatcher* dispatcher) {
  if (dispatcher == nullptr) return;
  dispatcher->tree = new (std::nothrow) DispatcherImpl();
}

void* sigsegv_register(sigsegv_dispatcher* dispatcher, void* address, size_t len, sigsegv_area_handler_t handler,
                       void* handler_arg) {
  if (dispatcher == nullptr || dispatcher->tree == nullptr || len == 0 || handler == nullptr) return nullptr;
  return c_entry<void*>(nullptr, [&]() -> void* {
    auto& d = *static_cast<DispatcherImpl*>(dispatcher->tree);
    std::lock_guard lock(d.mutex);
    auto next = std::make_unique<AreaTable>();
    if (const AreaTable* cur = d.table.load(std::memory_order_acquire); cur != nullptr) next->areas = cur->areas;
    auto* ticket = new int;  // a unique address per registration
    const Area a{reinterpret_cast<std::uintptr_t>(address), len, handler, handler_arg, ticket};
    next->areas.insert(std::upper_bound(next->areas.begin(), next->areas.end(), a,
                                        [](const Area& x, const Area& y) { return x.base < y.base; }),
                       a);
    publish(d, next.release());
    return ticket;
  });
}

void sigsegv_unregister(sigsegv_dispatcher* dispatcher, void* ticket) {
  if (dispatcher == nullptr || dispatcher->tree == nullptr || ticket == nullptr) return;
  c_entry([&] {
    auto& d = *static_cast<DispatcherImpl*>(dispatcher->tree);
    std::lock_guard lock(d.mutex);
    const AreaTable* cur = d.table.load(std::memory_order_acquire);
    if (cur == nullptr) return;
    auto next = std::make_unique<AreaTable>();
    for (const Area& a : cur->areas) {
      if (a.ticket != ticket) next->areas.push_back(a);
    }
    if (next->areas.size() == cur->areas.size()) return;  // not registered here
    publish(d, next.release());
    delete static_cast<int*>(ticket);
  });
}

// Two symbols libsigsegv.so.2 exports without declaring them in its header (its own internals), kept so
// that the exported symbol set is the same:
//   sigsegv_get_vma(address, vma) looks up the memory mapping around an address in libsigsegv's private
//   struct layout; faultline does that itself, so it answers -1 ("not found"), which libsigsegv's own
//   callers treat as "cannot tell";
//   sigsegv_reset_onstack_flag() resets a flag libsigsegv keeps on platforms without sigaltstack's
//   SS_ONSTACK; Linux tracks that in the kernel, so there is nothing to reset.
int sigsegv_get_vma(unsigned long address, void* vma) {
  (void)address;
  (void)vma;
  return -1;
}

void sigsegv_reset_onstack_flag(void) {}

}  // extern "C"
