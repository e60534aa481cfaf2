// faultline/thread.hpp: attaching threads to faultline.
//
// A thread that attaches gets an alternate signal stack (so that faultline's handler still runs when
// the thread overflows its own stack), has its stack bounds recorded (for stack-overflow detection) and
// gets per-thread state that signal handlers reach without lazy TLS. Attach once per thread, early;
// the returned handle detaches when destroyed. A thread that exits while attached is detached by a
// thread-exit hook. install() attaches the thread that calls it.
//
// Threads that never attach still have their faults dispatched; what they miss is the alternate stack
// (a stack overflow then kills them by SIGSEGV without a report) and overflow recognition. One that set
// a small alternate stack of its own still gets the whole crash report (it moves to a spare stack: see
// report.hpp).
#pragma once

#include <cstddef>

#include "faultline/result.hpp"

namespace faultline {

struct AttachOptions {
  // Size of the alternate signal stack faultline maps (rounded up to pages; a guard page is added
  // below it). 0 picks the default: the larger of 128 KiB and 4 x getauxval(AT_MINSIGSTKSZ); at least
  // smallest_usable_altstack(), or attach fails with Errc::invalid_argument. A thread that already has
  // an alternate stack keeps it if it is at least smallest_usable_altstack() bytes; a smaller one (Rust's
  // standard library gives each of its threads 8 KiB) is replaced by faultline's for as long as the
  // thread is attached, and put back when it detaches.
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

// The smallest alternate stack faultline's handler runs on: this machine's largest signal frame
// (AT_MINSIGSTKSZ) and 32 KiB. If a handler does run off the end of a smaller one (a thread that set
// its own after attaching), faultline reports a nested fault naming the overflow and the signal's
// default action ends the process: it never loops. Thread-safe; not async-signal-safe.
std::size_t smallest_usable_altstack() noexcept;

}  // namespace faultline
