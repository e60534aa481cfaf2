// faultline/thread.hpp: attaching threads to faultline.
//
// A thread that attaches gets an alternate signal stack (so that faultline's handler still runs when
// the thread overflows its own stack), has its stack bounds recorded (for stack-overflow detection) and
// gets per-thread state that signal handlers reach without lazy TLS. Attach once per thread, early;
// the returned handle detaches when destroyed. A thread that exits while attached is detached by a
// thread-exit hook. install() attaches the thread that calls it.
//
// Threads that never attach still have their faults dispatched; what they miss is the alternate stack
// (a stack overflow then kills them by SIGSEGV without a report) and overflow recognition.
#pragma once

#include <cstddef>

#include "faultline/result.hpp"

namespace faultline {

struct AttachOptions {
  // Size of the alternate signal stack faultline maps (rounded up to pages; a guard page is added
  // below it). 0 picks the default: the larger of 128 KiB and 4 x getauxval(AT_MINSIGSTKSZ). A thread
  // that already has an alternate stack keeps it.
  std::size_t altstack_size = 0;
};

// RAII attachment of the calling thread. Move-only; destroy it on the thread that attached.
class [[nodiscard]] ThreadAttachment {
 public:
  ThreadAttachment() = default;
  ThreadAttachment(ThreadAttachment&& o) noexcept : active_(o.active_) { o.active_ = false; }
  ThreadAttachment& operator=(ThreadAttachment&& o) noexcept;
  ThreadAttachment(const ThreadAttachment&) = delete;
  ThreadAttachment& operator=(const ThreadAttachment&) = delete;
  ~ThreadAttachment() { reset(); }

  // Detaches now (no-op if already detached). Must run on the attaching thread.
  void reset() noexcept;
  bool active() const noexcept { return active_; }

 private:
  friend Result<ThreadAttachment> attach_thread(const AttachOptions&);
  explicit ThreadAttachment(bool active) : active_(active) {}
  bool active_ = false;
};

// Attaches the calling thread. Attaching an attached thread nests (each handle detaches once).
// Thread-safe; not async-signal-safe.
Result<ThreadAttachment> attach_thread(const AttachOptions& opts = {});

// True if the calling thread is attached. Async-signal-safe.
bool thread_attached() noexcept;

// The alternate-stack size attach_thread() uses by default on this machine.
std::size_t default_altstack_size() noexcept;

}  // namespace faultline
