// trap/dispatcher_sig.cpp: the signal handler itself (signal path).
//
// Everything in this file runs in signal context. It uses only the raw-syscall layer, core and the
// architecture layer: no malloc, no locks, no stdio, no exceptions; per-thread state is initial-exec TLS.
#include "trap/dispatcher.hpp"

#include <cerrno>
#include <cstring>

#include "core/format.hpp"
#include "os/linux/syscall.hpp"

namespace faultline::trap {

constinit DispatcherState g_state{};
constinit std::atomic<std::uintptr_t> g_main_stack_lo{0};
constinit std::atomic<std::uintptr_t> g_main_stack_hi{0};

namespace {

// What a thread inside faultline's handler keeps about the dispatch in progress.
struct SignalTls {
  std::uintptr_t frame;  // the dispatch's frame address while it runs (0 when none)
  bool in_epoch;         // the dispatch holds an epoch reader count on `side`
  unsigned side;
  int sig, code;          // the fault being handled, for a nested-fault report
  std::uintptr_t addr, pc;
  int nested;             // nested faults seen in this dispatch
  std::uintptr_t sp;      // the interrupted stack pointer
  const FaultContext* ctx;  // the dispatch's context (valid while it runs)
};
__attribute__((tls_model("initial-exec"))) constinit thread_local SignalTls t_sig{};

// A fault this thread turned into SIGBUS (fail_with_sigbus) whose SIGBUS has not arrived yet.
struct ConvertedTls {
  bool pending;
  std::uintptr_t addr;
  char cause[200];
};
__attribute__((tls_model("initial-exec"))) constinit thread_local ConvertedTls t_conv{};

// The calling thread's stack, as the thread layer recorded it at attach (zero: unknown).
__attribute__((tls_model("initial-exec"))) constinit thread_local StackBounds t_stack{};

void log_sink(void* ctx, const char* data, std::size_t len) {
  os::raw_write_all(*static_cast<int*>(ctx), data, len);
}

void leave_epoch() noexcept {
  if (t_sig.in_epoch) {
    t_sig.in_epoch = false;
    g_state.epoch.exit(t_sig.side);
  }
}

// A fault while this thread was inside faultline's handler: report both, then the default action.
// `altstack_size`: not 0 when the handler ran off the end of the thread's alternate stack of that size.
[[gnu::noinline, gnu::cold]] void nested_fault(const FaultContext& ctx, std::size_t altstack_size = 0) noexcept {
  int fd = g_state.log_fd.load(std::memory_order_relaxed);
  if (t_sig.nested++ == 0) {
    char buf[512];
    core::Formatter f(buf, sizeof buf, log_sink, &fd);
    f.put("faultline: nested fault: ").put(ctx.signal_name()).put(" (").put(ctx.code_name()).put(") at ")
        .hex(ctx.address()).put(" pc ").hex(ctx.pc()).put(" while handling ").put(signal_name(t_sig.sig))
        .put(" (").put(signal_code_name(t_sig.sig, t_sig.code)).put(") at ").hex(t_sig.addr).put(" pc ")
        .hex(t_sig.pc).put(" in thread ").dec(os::raw_gettid()).put("\n");
    if (altstack_size != 0) {
      f.put("faultline: the handler overflowed the thread's alternate signal stack (").udec(altstack_size)
          .put(" bytes: too small for faultline's handler; see faultline::smallest_usable_altstack())\n");
    }
    f.flush();
  }
  die_by_default(ctx.signal(), ctx.is_kernel_fault() && ctx.signal() != SIGTRAP);
}

// The active dispatch ran on the thread's alternate stack and this fault's stack pointer lies just
// below that stack, in its guard: the handler overflowed it. The kernel, finding the stack pointer off
// the alternate stack, delivered this fault at its top again, over the dispatch in progress (so the
// frame test in dispatch() cannot see it): without this test the handler would run again, overflow
// again, and loop for ever. Returns the stack's size, or 0.
std::size_t overflowed_altstack(const FaultContext& ctx) noexcept {
  std::uintptr_t lo, hi;
  if (!altstack_around(t_sig.frame, &lo, &hi)) return 0;
  const bool sp_below_it = ctx.sp() < lo && ctx.sp() + (std::uintptr_t{64} << 10) >= lo;
  return sp_below_it ? hi - lo : 0;
}

bool bounds_of_this_thread(std::uintptr_t* lo, std::uintptr_t* hi, std::size_t* guard) noexcept {
  if (t_stack.lo != 0) {
    *lo = t_stack.lo;
    *hi = t_stack.hi;
    *guard = t_stack.guard;
    return true;
  }
  if (os::raw_gettid() == os::raw_getpid()) {  // the main thread (also in a forked child)
    *lo = g_main_stack_lo.load(std::memory_order_relaxed);
    *hi = g_main_stack_hi.load(std::memory_order_relaxed);
    *guard = 0;
    return *lo != 0;
  }
  return false;
}

// A SIGSEGV whose address and stack pointer both sit at the low end of this thread's stack, in its
// guard area or just past it, is a stack overflow.
constexpr std::uintptr_t kBelow = 1u << 20;  // the kernel's stack guard gap is 256 pages
constexpr std::uintptr_t kAbove = 64u << 10;

bool detect_overflow(const FaultContext& ctx, StackOverflow* out) noexcept {
  // Cheap filter first: an overflow faults close to the stack pointer. Region faults, the common case,
  // are far from it and never pay for finding the thread's stack bounds (two system calls when the
  // thread did not attach).
  const std::uintptr_t near_addr = ctx.address(), near_sp = ctx.sp();
  if (near_addr + kBelow < near_sp || near_addr > near_sp + kAbove) return false;
  std::uintptr_t lo, hi;
  std::size_t guard;
  if (!bounds_of_this_thread(&lo, &hi, &guard)) return false;
  std::uintptr_t below = guard > kBelow ? guard : kBelow;
  std::uintptr_t floor = lo > below ? lo - below : 0;
  std::uintptr_t addr = ctx.address(), sp = ctx.sp();
  bool addr_at_end = addr >= floor && addr < lo + 4096;
  bool sp_at_end = sp >= floor && sp < lo + kAbove;
  if (!addr_at_end || !sp_at_end) return false;
  out->fault_address = addr;
  out->stack_lo = lo;
  out->stack_hi = hi;
  out->tid = os::raw_gettid();
  return true;
}

[[gnu::noinline, gnu::cold]] void log_overflow(const StackOverflow& ov) noexcept {
  int fd = g_state.log_fd.load(std::memory_order_relaxed);
  char buf[256];
  core::Formatter f(buf, sizeof buf, log_sink, &fd);
  f.put("faultline: stack overflow in thread ").dec(ov.tid).put(" at ").hex(ov.fault_address)
      .put(" (stack ").hex(ov.stack_lo).put("-").hex(ov.stack_hi).put(")\n");
  f.flush();
}

[[gnu::noinline, gnu::cold]] void log_cause(const FaultContext& ctx, const char* cause) noexcept {
  int fd = g_state.log_fd.load(std::memory_order_relaxed);
  char buf[384];
  core::Formatter f(buf, sizeof buf, log_sink, &fd);
  f.put("faultline: ").put(ctx.signal_name()).put(" at ").hex(ctx.address()).put(" in thread ")
      .dec(os::raw_gettid()).put(": ").put(cause).put('\n');
  f.flush();
}

struct DescribedLine {
  core::Formatter* f;
  bool any;
};

// Whether some describer (a region) describes `addr`.
[[gnu::noinline, gnu::cold]] bool is_described(std::uintptr_t addr) noexcept {
  bool any = false;
  describe_address(addr, [](void* c, const char*, std::size_t) { *static_cast<bool*>(c) = true; }, &any);
  return any;
}

[[gnu::noinline, gnu::cold]] void log_described(const FaultContext& ctx) noexcept {
  int fd = g_state.log_fd.load(std::memory_order_relaxed);
  char buf[512];
  core::Formatter f(buf, sizeof buf, log_sink, &fd);
  DescribedLine line{&f, false};
  describe_address(
      ctx.address(),
      [](void* c, const char* text, std::size_t len) {
        auto* l = static_cast<DescribedLine*>(c);
        l->f->put(l->any ? "; " : "").put(text, len);
        l->any = true;
      },
      &line);
  if (!line.any) return;
  f.put('\n');
  // Prefix written separately so that nothing is printed for addresses nobody describes.
  char head[128];
  core::Formatter h(head, sizeof head, log_sink, &fd);
  h.put("faultline: ").put(ctx.signal_name()).put(" (").put(ctx.code_name()).put(") at ").hex(ctx.address())
      .put(" in ");
  h.flush();
  f.flush();
}

// The previous action, copied (the slots may be rewritten by reassert() once we leave the epoch).
struct sigaction previous_action(int sig) noexcept {
  SignalState& ss = g_state.sig[sig];
  struct sigaction sa;
  std::memcpy(&sa, &ss.prev[ss.prev_idx.load(std::memory_order_acquire) & 1], sizeof sa);
  if (ss.prev_reset.load(std::memory_order_acquire)) {
    sa.sa_handler = SIG_DFL;
    sa.sa_flags = 0;
  }
  return sa;
}

bool is_fatal(const struct sigaction& sa, bool kernel_fault) noexcept {
  if (sa.sa_flags & SA_SIGINFO) return false;
  return sa.sa_handler == SIG_DFL || (sa.sa_handler == SIG_IGN && kernel_fault);
}

// Hands the signal to the action installed before faultline, with that action's semantics.
// `reexecute`: for SIG_DFL, returning makes the faulting instruction raise the signal again.
void chain(int sig, siginfo_t* info, ucontext_t* uc, const struct sigaction& sa, bool kernel_fault,
           bool reexecute) noexcept {
  if (!(sa.sa_flags & SA_SIGINFO)) {
    if (sa.sa_handler == SIG_DFL) return die_by_default(sig, reexecute);
    if (sa.sa_handler == SIG_IGN) {
      // The kernel does not let a synchronous fault be ignored: it resets the action and kills.
      if (kernel_fault) die_by_default(sig, reexecute);
      return;
    }
  }
  if (sa.sa_flags & SA_RESETHAND) g_state.sig[sig].prev_reset.store(true, std::memory_order_release);
  // Block what the previous action asked for while it runs, as the kernel would have.
  std::uint64_t mask;
  static_assert(sizeof(sa.sa_mask) >= sizeof(mask));
  std::memcpy(&mask, &sa.sa_mask, sizeof mask);
  if (!(sa.sa_flags & SA_NODEFER)) mask |= os::sigbit(sig);
  std::uint64_t old = 0;
  os::raw_sigprocmask(SIG_BLOCK, &mask, &old);
  if (sa.sa_flags & SA_SIGINFO) sa.sa_sigaction(sig, info, uc);
  else sa.sa_handler(sig);
  os::raw_sigprocmask(SIG_SETMASK, &old, nullptr);
}

void dispatch(int sig, siginfo_t* info, ucontext_t* uc) noexcept {
  const auto here = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
  FaultContext ctx(sig, info, uc);
  SignalState& ss = g_state.sig[sig <= kMaxSig ? sig : 0];
  ss.seen.fetch_add(1, std::memory_order_relaxed);

  if (t_sig.frame != 0) {
    // The interrupted code ran between an active dispatch's frame and ours: it was that dispatch.
    if (ctx.sp() < t_sig.frame && ctx.sp() > here) return nested_fault(ctx);
    if (const std::size_t size = overflowed_altstack(ctx); size != 0) return nested_fault(ctx, size);
    // Otherwise a handler left by longjmp without leave_handler(): repair its epoch count.
    leave_epoch();
  }
  const bool kernel_fault = ctx.is_kernel_fault();
  // The SIGBUS that fail_with_sigbus() queued: it has the semantics of a kernel fault (SIG_IGN cannot
  // ignore it) but must be raised, not re-executed (the instruction would fault as SIGSEGV again), and
  // no handler is offered it (the region would only fail again).
  const bool converted = sig == SIGBUS && t_conv.pending && kernel_fault && ctx.code() == BUS_ADRERR &&
                         ctx.address() == t_conv.addr;
  if (converted) t_conv.pending = false;
  t_sig = SignalTls{here, false, 0, sig, ctx.code(), ctx.address(), ctx.pc(), 0, ctx.sp(), &ctx};

  // The epoch keeps handler slots, their data and the previous action alive while we use them.
  t_sig.side = g_state.epoch.enter();
  t_sig.in_epoch = true;
  // The SIGBUS that faultline's handler thread queues to end an access to a page it failed to fill, on a
  // kernel without UFFDIO_POISON: a kernel fault in all but its code (it cannot be ignored, and the log
  // says which region and why), recognised by its address being a region's. Raised, not re-executed.
  const bool queued_failure = sig == SIGBUS && ctx.code() == SI_QUEUE && is_described(ctx.address());
  const bool fatal_kind = kernel_fault || queued_failure;

  StackOverflow overflow{};
  bool is_overflow = false;
  if (kernel_fault && !converted) {
    is_overflow = sig == SIGSEGV && detect_overflow(ctx, &overflow);
    if (is_overflow) {
      ss.overflows.fetch_add(1, std::memory_order_relaxed);
      StackOverflowHandler hook = g_state.overflow_fn.load(std::memory_order_acquire);
      if (hook != nullptr &&
          hook(ctx, overflow, g_state.overflow_data.load(std::memory_order_relaxed)) == Disposition::resolved) {
        leave_handler();
        return;
      }
    } else {
      const unsigned bit = signal_bit(sig);
      const unsigned n = g_state.slot_limit.load(std::memory_order_acquire);
      for (unsigned i = 0; i < n; ++i) {
        HandlerSlot& slot = g_state.slots[i];
        FaultHandler fn = slot.fn.load(std::memory_order_acquire);
        if (fn == nullptr || (slot.signals.load(std::memory_order_relaxed) & bit) == 0) continue;
        if (fn(ctx, slot.data.load(std::memory_order_relaxed)) == Disposition::resolved) {
          leave_handler();
          return;
        }
      }
    }
  }

  // Nobody resolved it: it goes to the previous action.
  ss.passed.fetch_add(1, std::memory_order_relaxed);
  const struct sigaction prev = previous_action(sig);
  if (is_fatal(prev, fatal_kind)) {
    FatalHook report = g_state.fatal_hook.load(std::memory_order_acquire);
    const char* cause = converted ? t_conv.cause : nullptr;
    if (report != nullptr && (fatal_kind || sig != SIGTRAP)) {
      report(ctx, is_overflow ? &overflow : nullptr, cause);
    } else if (is_overflow) {
      log_overflow(overflow);
    } else if (cause != nullptr) {
      log_cause(ctx, cause);
    } else if (sig == SIGBUS && fatal_kind) {
      log_described(ctx);  // e.g. a poisoned page of a region whose fill failed: say which and why
    }
  }
  // Leave the epoch before chaining: a previous handler may longjmp out. The frame marker stays until
  // chain() returns, so a fault inside the previous handler is recognised as nested.
  leave_epoch();
  chain(sig, info, uc, prev, fatal_kind, kernel_fault && sig != SIGTRAP && !converted);
  t_sig.frame = 0;
}

}  // namespace

void die_by_default(int sig, bool reexecute) noexcept {
  os::KernelSigaction dfl{};
  dfl.handler = SIG_DFL;
  os::raw_sigaction(sig, &dfl, nullptr);
  if (reexecute) return;  // returning re-executes the faulting instruction under the default action
  const std::uint64_t unblock = os::sigbit(sig);
  os::raw_tgkill(os::raw_getpid(), os::raw_gettid(), sig);
  os::raw_sigprocmask(SIG_UNBLOCK, &unblock, nullptr);
  // Still alive: the signal was blocked in a way we could not undo. Do not return into a broken state.
  os::raw_exit_group(128 + sig);
}

void suspend_epoch() noexcept { leave_epoch(); }

void set_thread_stack(const StackBounds& b) noexcept { t_stack = b; }

bool altstack_around(std::uintptr_t addr, std::uintptr_t* lo, std::uintptr_t* hi) noexcept {
  if (addr >= t_stack.altstack_lo && addr < t_stack.altstack_hi) {
    *lo = t_stack.altstack_lo;
    *hi = t_stack.altstack_hi;
    return true;
  }
  stack_t cur{};
  if (os::is_err(os::raw_sigaltstack(nullptr, &cur)) || (cur.ss_flags & SS_DISABLE)) return false;
  *lo = reinterpret_cast<std::uintptr_t>(cur.ss_sp);
  *hi = *lo + cur.ss_size;
  return addr >= *lo && addr < *hi;
}

void reset_epoch_after_fork() noexcept { g_state.epoch.reset_after_fork(t_sig.in_epoch ? static_cast<int>(t_sig.side) : -1); }

bool wait_outside_epoch(std::atomic<std::uint32_t>& w, std::uint32_t expected, std::int64_t deadline_ns) noexcept {
  suspend_epoch();
  const bool in_time = os::futex_wait_until(w, expected, deadline_ns);
  resume_epoch();
  return in_time;
}

std::uintptr_t interrupted_sp() noexcept { return t_sig.frame != 0 ? t_sig.sp : 0; }

const FaultContext* active_context() noexcept { return t_sig.frame != 0 ? t_sig.ctx : nullptr; }

void resume_epoch() noexcept {
  if (t_sig.in_epoch) return;
  t_sig.side = g_state.epoch.enter();
  t_sig.in_epoch = true;
}

void fail_with_sigbus(FaultContext& ctx, const char* cause) noexcept {
  std::size_t n = 0;
  if (cause != nullptr) {
    while (cause[n] != '\0' && n + 1 < sizeof t_conv.cause) {
      t_conv.cause[n] = cause[n];
      ++n;
    }
  }
  t_conv.cause[n] = '\0';
  t_conv.addr = ctx.address();
  t_conv.pending = true;
  siginfo_t si;
  std::memset(&si, 0, sizeof si);
  si.si_signo = SIGBUS;
  si.si_code = BUS_ADRERR;
  si.si_addr = reinterpret_cast<void*>(ctx.address());
  // Blocked until the handler returns (sigreturn installs uc_sigmask), or it would arrive right now,
  // as a nested fault.
  const std::uint64_t bus = os::sigbit(SIGBUS);
  os::raw_sigprocmask(SIG_BLOCK, &bus, nullptr);
  os::raw_rt_tgsigqueueinfo(os::raw_getpid(), os::raw_gettid(), SIGBUS, &si);
  // Deliver it as soon as the handler returns, even if the interrupted code blocked SIGBUS (the kernel
  // does the same for the faults it raises).
  if (ucontext_t* uc = ctx.ucontext(); uc != nullptr) {
    std::uint64_t mask;
    std::memcpy(&mask, &uc->uc_sigmask, sizeof mask);
    mask &= ~os::sigbit(SIGBUS);
    std::memcpy(&uc->uc_sigmask, &mask, sizeof mask);
  }
}

void describe_address(std::uintptr_t addr, DescribeSink sink, void* ctx) noexcept {
  const unsigned n = g_state.slot_limit.load(std::memory_order_acquire);
  for (unsigned i = 0; i < n; ++i) {
    HandlerSlot& slot = g_state.slots[i];
    if (slot.fn.load(std::memory_order_acquire) == nullptr) continue;
    FaultDescriber d = slot.describe.load(std::memory_order_relaxed);
    if (d == nullptr) continue;
    char buf[256];
    std::size_t len = d(addr, buf, sizeof buf, slot.data.load(std::memory_order_relaxed));
    if (len > 0) sink(ctx, buf, len < sizeof buf ? len : sizeof buf - 1);
  }
}

extern "C" void faultline_trap_entry(int sig, siginfo_t* info, void* uc) {
  const int saved_errno = errno;
  dispatch(sig, info, static_cast<ucontext_t*>(uc));
  errno = saved_errno;
}

}  // namespace faultline::trap

namespace faultline {

void leave_handler() noexcept {
  trap::leave_epoch();
  trap::t_sig.frame = 0;
}

bool in_handler() noexcept {
  if (trap::t_sig.frame == 0) return false;
  // A dispatch is live if this code runs deeper on the same stack as its frame. A frame left behind by
  // a handler that longjmp'ed out without leave_handler() is repaired here (and at the next fault).
  const auto here = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
  stack_t ss{};
  bool on_alt = false, frame_on_alt = false;
  if (!os::is_err(os::raw_sigaltstack(nullptr, &ss)) && !(ss.ss_flags & SS_DISABLE)) {
    const auto lo = reinterpret_cast<std::uintptr_t>(ss.ss_sp);
    on_alt = (ss.ss_flags & SS_ONSTACK) != 0;
    frame_on_alt = trap::t_sig.frame >= lo && trap::t_sig.frame < lo + ss.ss_size;
  }
  if (on_alt == frame_on_alt && here < trap::t_sig.frame) return true;
  leave_handler();
  return false;
}

const FaultContext* active_fault() noexcept { return trap::active_context(); }

bool installed() noexcept {
  for (int s : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP}) {
    if (trap::g_state.sig[s].installed.load(std::memory_order_acquire)) return true;
  }
  return false;
}

TrapCounters counters(int sig) noexcept {
  TrapCounters c;
  if (sig <= 0 || sig > trap::kMaxSig) return c;
  const trap::SignalState& ss = trap::g_state.sig[sig];
  // The hot path counts only what it sees; what it passes on is counted on the way out, and the rest
  // was resolved (one locked add per fault fewer). `passed` is read first: a fault passed on between
  // the two loads is counted as resolved rather than making resolved negative.
  c.passed = ss.passed.load(std::memory_order_acquire);
  c.seen = ss.seen.load(std::memory_order_acquire);
  c.resolved = c.seen >= c.passed ? c.seen - c.passed : 0;
  c.stack_overflows = ss.overflows.load(std::memory_order_relaxed);
  return c;
}

}  // namespace faultline
