// thread/thread_state.hpp: per-thread state, allocated when a thread attaches (never in signal context).
//
// Signal handlers reach it through an initial-exec TLS pointer set at attach (no lazy TLS, no
// __tls_get_addr), so reading it from a handler is one load. Threads that never attached read null.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace faultline::thread {

struct ThreadState {
  long tid = 0;
  // The thread's stack: [stack_lo, stack_hi); the guard area below stack_lo is `guard_size` bytes.
  std::uintptr_t stack_lo = 0;
  std::uintptr_t stack_hi = 0;
  std::size_t guard_size = 0;
  // The alternate signal stack in use: [altstack_lo, altstack_hi). `altstack_owned`: faultline mapped
  // it (with a guard page at altstack_map) and removes it at detach.
  std::uintptr_t altstack_lo = 0;
  std::uintptr_t altstack_hi = 0;
  void* altstack_map = nullptr;
  std::size_t altstack_map_size = 0;
  bool altstack_owned = false;
  bool is_main = false;
  // Attach nesting count (attach() on an attached thread increments it).
  int attach_count = 0;
  // Registry links (guarded by the registry mutex; never read in signal context).
  ThreadState* prev = nullptr;
  ThreadState* next = nullptr;
};

// The calling thread's state, or null. Async-signal-safe (one initial-exec TLS load).
ThreadState* current() noexcept;
void set_current(ThreadState* ts) noexcept;

// Stack of the process's main thread, recorded at install; used for threads that did not attach but
// are the main thread. Zero when unknown.
struct StackBounds {
  std::uintptr_t lo = 0, hi = 0;
  std::size_t guard = 0;
};
extern std::atomic<std::uintptr_t> g_main_stack_lo;
extern std::atomic<std::uintptr_t> g_main_stack_hi;
extern std::atomic<long> g_main_tid;

}  // namespace faultline::thread
