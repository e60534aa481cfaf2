// thread/attach.cpp: attaching threads (alternate signal stack, stack bounds, registry). Not signal path.
#include <pthread.h>
#include <sys/auxv.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <mutex>
#include <new>

#include "core/guard.hpp"
#include "core/page.hpp"
#include "faultline/thread.hpp"
#include "faultline/world.hpp"
#include "os/linux/sigstack.hpp"
#include "os/linux/syscall.hpp"
#include "thread/registry.hpp"
#include "thread/state.hpp"
#include "trap/dispatcher.hpp"

namespace faultline {

namespace {

std::mutex g_registry_mutex;
thread::ThreadState* g_threads = nullptr;  // doubly-linked list of attached threads
pthread_key_t g_exit_key;
std::once_flag g_exit_key_once;

void detach_current() noexcept;

void on_thread_exit(void*) {
  // The thread exits while attached: detach it fully.
  thread::ThreadState* ts = thread::current();
  if (ts != nullptr) {
    ts->attach_count = 1;
    detach_current();
  }
}

Result<void> record_stack(thread::ThreadState& ts) {
  pthread_attr_t attr;
  int rc = pthread_getattr_np(pthread_self(), &attr);
  if (rc != 0) return Error::from_errno("pthread_getattr_np", rc);
  void* addr = nullptr;
  std::size_t size = 0, guard = 0;
  pthread_attr_getstack(&attr, &addr, &size);
  pthread_attr_getguardsize(&attr, &guard);
  pthread_attr_destroy(&attr);
  ts.stack_lo = reinterpret_cast<std::uintptr_t>(addr);
  ts.stack_hi = ts.stack_lo + size;
  ts.guard_size = guard;
  return {};
}

Result<void> setup_altstack(thread::ThreadState& ts, std::size_t want) {
  stack_t cur{};
  if (const long rc = os::raw_sigaltstack(nullptr, &cur); os::is_err(rc)) {
    return Error::from_errno("sigaltstack", static_cast<int>(-rc));
  }
  // Keep the thread's own alternate stack when faultline's handler fits on it. A smaller one (Rust's
  // standard library gives each thread 8 KiB, enough for its own handler) is replaced for as long as
  // the thread is attached, and put back at detach: on it, a crash report would run off its end.
  if (!(cur.ss_flags & SS_DISABLE) && cur.ss_size >= os::smallest_usable_altstack()) {
    ts.altstack_lo = reinterpret_cast<std::uintptr_t>(cur.ss_sp);
    ts.altstack_hi = ts.altstack_lo + cur.ss_size;
    return {};
  }
  if (cur.ss_flags & SS_ONSTACK) return Error(Errc::busy, "attach_thread: called on the alternate signal stack");
  const std::size_t page = core::page_size();
  std::size_t size = core::align_up(want != 0 ? want : default_altstack_size(), page);
  const std::size_t total = size + page;  // one guard page below: an overflow of the handler faults, visibly
  const char* failed = "";
  const long m = os::map_guarded_stack(size, &failed);
  if (os::is_err(m)) {
    return Error::from_errno((std::string(failed) + " (alternate signal stack)").c_str(), static_cast<int>(-m));
  }
  void* map = reinterpret_cast<void*>(m);
  stack_t ss{};
  ss.ss_sp = static_cast<char*>(map) + page;
  ss.ss_size = size;
  ss.ss_flags = 0;
  if (const long rc = os::raw_sigaltstack(&ss, nullptr); os::is_err(rc)) {
    os::raw_munmap(map, total);
    return Error::from_errno("sigaltstack", static_cast<int>(-rc));
  }
  ts.altstack_lo = reinterpret_cast<std::uintptr_t>(ss.ss_sp);
  ts.altstack_hi = ts.altstack_lo + size;
  ts.altstack_map = map;
  ts.altstack_map_size = total;
  ts.altstack_owned = true;
  ts.altstack_replaced = cur;  // SS_DISABLE when there was none
  return {};
}

void detach_current() noexcept {
  thread::ThreadState* ts = thread::current();
  if (ts == nullptr) return;
  if (--ts->attach_count > 0) return;
  {
    // A stop in progress holds the registry lock until it resumes: wait for it as a blocking region, so
    // that the stop counts this thread as stopped without signalling it.
    BlockingRegion waiting;
    std::lock_guard lock(g_registry_mutex);
    if (ts->prev != nullptr) ts->prev->next = ts->next;
    else g_threads = ts->next;
    if (ts->next != nullptr) ts->next->prev = ts->prev;
  }
  thread::release_preemption(*ts);
  thread::set_current(nullptr);
  trap::set_thread_stack({});
  pthread_setspecific(g_exit_key, nullptr);
  if (ts->altstack_owned) {
    // Put back what the thread had (nothing, or the small stack replaced at attach) if faultline's is
    // still the thread's; if another component has set its own since (or, like Rust's standard library
    // at thread exit, disabled it), leave that alone. Unmapped unless the thread still runs on it.
    stack_t cur{};
    os::raw_sigaltstack(nullptr, &cur);
    const bool ours = !(cur.ss_flags & SS_DISABLE) && reinterpret_cast<std::uintptr_t>(cur.ss_sp) == ts->altstack_lo;
    if (!(ours && (cur.ss_flags & SS_ONSTACK))) {
      if (ours) {
        stack_t back = ts->altstack_replaced;
        back.ss_flags &= SS_DISABLE | (1u << 31);  // SS_AUTODISARM (not in every libc)
        os::raw_sigaltstack(&back, nullptr);
      }
      os::raw_munmap(ts->altstack_map, ts->altstack_map_size);
    }
  }
  ::operator delete(ts->xstate, std::align_val_t{64});
  delete ts;
}

}  // namespace

std::size_t smallest_usable_altstack() noexcept { return os::smallest_usable_altstack(); }

std::size_t default_altstack_size() noexcept {
  const std::size_t min = os::min_signal_stack();
  std::size_t want = 4 * min;
  return want > (128u << 10) ? want : (128u << 10);
}

ThreadAttachment& ThreadAttachment::operator=(ThreadAttachment&& o) noexcept {
  if (this != &o) {
    reset();
    active_ = o.active_;
    o.active_ = false;
  }
  return *this;
}

void ThreadAttachment::reset() noexcept {
  if (active_) {
    active_ = false;
    detach_current();
  }
}

Result<ThreadAttachment> attach_thread(const AttachOptions& opts) {
  return core::guarded([&]() -> Result<ThreadAttachment> {
    if (opts.altstack_size != 0 && opts.altstack_size < os::smallest_usable_altstack()) {
      return Error(Errc::invalid_argument, "attach_thread: altstack_size " + std::to_string(opts.altstack_size) +
                                               " is below what faultline's handler needs (" +
                                               std::to_string(os::smallest_usable_altstack()) +
                                               " bytes: the signal frame, AT_MINSIGSTKSZ, and 32 KiB)");
    }
    if (thread::ThreadState* ts = thread::current(); ts != nullptr) {
      ++ts->attach_count;
      return ThreadAttachment(true);
    }
    std::call_once(g_exit_key_once, [] { pthread_key_create(&g_exit_key, on_thread_exit); });
    // Everything that can fail first (allocations, stack bounds), then the alternate stack, the last step
    // that changes the thread; on failure nothing is left behind.
    const std::size_t xstate_cap = core::align_up(std::max<std::size_t>(4096, os::min_signal_stack()), 64);
    thread::ThreadState* ts = nullptr;
    unsigned char* xstate = nullptr;
    if (os::inject::point(fault_injection::Op::alloc) == 0) {
      ts = new (std::nothrow) thread::ThreadState();
      // Room for the FP/SIMD state a stop copies out of the signal frame (XSAVE area; AT_MINSIGSTKSZ
      // covers the whole frame, so it bounds it).
      xstate = static_cast<unsigned char*>(::operator new(xstate_cap, std::align_val_t{64}, std::nothrow));
    }
    if (ts == nullptr || xstate == nullptr) {
      delete ts;
      ::operator delete(xstate, std::align_val_t{64});
      return Error(Errc::no_space, "attach_thread: out of memory for the thread's state");
    }
    ts->xstate = xstate;
    ts->xstate_cap = xstate_cap;
    ts->tid = gettid();
    ts->is_main = ts->tid == getpid();
    auto undo = [&] {
      ::operator delete(ts->xstate, std::align_val_t{64});
      delete ts;
    };
    if (auto r = record_stack(*ts); !r) {
      undo();
      return std::move(r).error();
    }
    if (auto r = setup_altstack(*ts, opts.altstack_size); !r) {
      undo();
      return std::move(r).error();
    }
    ts->attach_count = 1;
    {
      std::lock_guard lock(g_registry_mutex);
      ts->next = g_threads;
      if (g_threads != nullptr) g_threads->prev = ts;
      g_threads = ts;
    }
    thread::set_current(ts);
    trap::set_thread_stack({ts->stack_lo, ts->stack_hi, ts->guard_size, ts->altstack_lo, ts->altstack_hi});
    pthread_setspecific(g_exit_key, ts);
    return ThreadAttachment(true);
  });
}

bool thread_attached() noexcept { return thread::current() != nullptr; }

namespace thread {

std::mutex& registry_mutex() noexcept { return g_registry_mutex; }
ThreadState* registry_head() noexcept { return g_threads; }

std::size_t attached_count() {
  std::lock_guard lock(g_registry_mutex);
  std::size_t n = 0;
  for (ThreadState* t = g_threads; t != nullptr; t = t->next) ++n;
  return n;
}

}  // namespace thread

}  // namespace faultline
