// report/report_sig.cpp: writes the crash report (signal path: no allocation, no stdio, no locks of ours).
#define UNW_LOCAL_ONLY
#include <fcntl.h>
#include <libunwind.h>

#include <absl/debugging/internal/demangle.h>

#include "arch/arch.hpp"
#include "core/format.hpp"
#include "faultline/report.hpp"
#include "os/linux/elf_symbols.hpp"
#include "os/linux/maps.hpp"
#include "os/linux/sigstack.hpp"
#include "os/linux/syscall.hpp"
#include "report/report_state.hpp"
#include "thread/state.hpp"
#include "trap/dispatcher.hpp"

namespace faultline::report {

constinit ReportConfig g_config{};
constinit SpareStack g_spare_stack{};

namespace {

void fd_sink(void* ctx, const char* data, std::size_t len) {
  os::raw_write_all(*static_cast<int*>(ctx), data, len);
}

struct Style {
  bool on;
  const char* bold() const { return on ? "\033[1m" : ""; }
  const char* red() const { return on ? "\033[1;31m" : ""; }
  const char* dim() const { return on ? "\033[2m" : ""; }
  const char* off() const { return on ? "\033[0m" : ""; }
};

void put_mapping(core::Formatter& f, const os::MapsEntry& m) {
  f.hex_digits(m.start, 0).put('-').hex_digits(m.end, 0).put(' ').put(m.perms).put(' ')
      .hex_digits(m.offset, 8).put(' ').put(m.path[0] != '\0' ? m.path : "(anonymous)");
}

// "#3  0x... in ns::name(int)+0x1f (/usr/lib/libfoo.so+0x1234)": the name from the module's ELF symbol
// table, demangled by abseil's demangler (async-signal-safe, no allocation; it leaves out template
// arguments, which `faultline symbolize` and `faultline catch` restore); the module's whole path, so
// that `faultline symbolize` can find it and its debug information for file:line.
void put_frame(core::Formatter& f, const Style& st, unsigned i, std::uintptr_t ip) {
  f.put("  #").udec(i).put(i < 10 ? "  " : " ").hex(ip, 16);
  os::Symbol sym;
  // A return address points after the call: look up ip - 1 so a call at a function's end names it.
  bool named = os::symbolize(i == 0 ? ip : ip - 1, &sym);
  if (named) {
    char demangled[256];
    const bool cxx = sym.name[0] == '_' && sym.name[1] == 'Z' &&
                     absl::debugging_internal::Demangle(sym.name, demangled, sizeof demangled);
    f.put(" in ").put(st.bold()).put(cxx ? demangled : sym.name).put(st.off()).put('+').hex(sym.offset + (i == 0 ? 0 : 1));
  }
  if (sym.module[0] != '\0') f.put(" (").put(sym.module).put('+').hex(sym.module_offset + (i == 0 ? 0 : 1)).put(')');
  f.put('\n');
}

// The calling thread's name (/proc/thread-self/comm, at most 15 characters), or "" when unreadable.
void thread_name(char (&out)[20]) {
  out[0] = '\0';
  const long fd = os::raw_open("/proc/thread-self/comm", O_RDONLY | O_CLOEXEC);
  if (os::is_err(fd)) return;
  const long n = os::raw_read(static_cast<int>(fd), out, sizeof out - 1);
  os::raw_close(static_cast<int>(fd));
  std::size_t len = n > 0 ? static_cast<std::size_t>(n) : 0;
  while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == '\0')) --len;
  out[len] = '\0';
}

// A long backtrace shows its first frames and its last (main and the thread's start always appear),
// with the count of those in between: a deep recursion's report stays readable and still ends at main.
constexpr unsigned kTailMax = 32;
constexpr unsigned kStepLimit = 1u << 20;  // a corrupt stack cannot make the walk endless

unsigned backtrace_libunwind(core::Formatter& f, const Style& st, const FaultContext& ctx, unsigned max) {
  unw_cursor_t cursor;
  // On x86-64 Linux, unw_context_t is ucontext_t: the signal frame's context starts the walk at the
  // faulting instruction itself.
  if (unw_init_local2(&cursor, reinterpret_cast<unw_context_t*>(ctx.ucontext()), UNW_INIT_SIGNAL_FRAME) < 0) {
    return 0;
  }
  const unsigned tail_cap = max / 2 < kTailMax ? max / 2 : kTailMax;
  const unsigned head = max - tail_cap;
  unw_word_t tail[kTailMax];
  unsigned n = 0;
  do {
    unw_word_t ip = 0;
    unw_get_reg(&cursor, UNW_REG_IP, &ip);
    if (n < head) put_frame(f, st, n, ip);
    else if (tail_cap != 0) tail[(n - head) % tail_cap] = ip;
    ++n;
  } while (n < kStepLimit && (n < head || tail_cap != 0) && unw_step(&cursor) > 0);
  if (n <= head) return n;
  const unsigned kept = n - head < tail_cap ? n - head : tail_cap;
  if (n - head > kept) f.put("  ... ").udec(n - head - kept).put(" frames not shown ...\n");
  for (unsigned i = n - kept; i < n; ++i) put_frame(f, st, i, tail[(i - head) % tail_cap]);
  return n;
}

// Frame-pointer walk within the thread's stack: used when libunwind finds nothing.
unsigned backtrace_frame_pointers(core::Formatter& f, const Style& st, const FaultContext& ctx, unsigned max) {
  std::uintptr_t lo = ctx.sp(), hi = 0;
  if (const thread::ThreadState* ts = thread::current(); ts != nullptr) hi = ts->stack_hi;
  if (hi == 0) hi = lo + (8u << 20);
  put_frame(f, st, 0, ctx.pc());
  unsigned n = 1;
  std::uintptr_t fp = ctx.fp();
  while (n < max && fp >= lo && fp + 16 <= hi && (fp & 7) == 0) {
    const auto* frame = reinterpret_cast<const std::uintptr_t*>(fp);
    std::uintptr_t next = frame[0], ret = frame[1];
    if (ret == 0) break;
    put_frame(f, st, n++, ret);
    if (next <= fp) break;
    fp = next;
  }
  return n;
}

void describe_sink(void* ctx, const char* text, std::size_t len) {
  auto* f = static_cast<core::Formatter*>(ctx);
  f->put("region    ").put(text, len).put('\n');
}

}  // namespace

void write_report(const FaultContext& ctx, int fd, bool color, bool backtrace, unsigned max_frames,
                  const char* reason, const StackOverflow* overflow, const char* cause) noexcept {
  char buf[1024];
  int out = fd;
  core::Formatter f(buf, sizeof buf, fd_sink, &out);
  const Style st{color};
  using A = arch::Current;

  f.put('\n').put(st.red()).put("*** faultline: ").put(reason != nullptr ? reason : "fatal signal").put(": ")
      .put(ctx.signal_name()).put(" (").put(ctx.code_name()).put(")").put(" in thread ").dec(os::raw_gettid());
  char name[20];
  thread_name(name);
  if (name[0] != '\0') f.put(" \"").put(name).put('"');
  f.put(" of process ").dec(os::raw_getpid()).put(" ***").put(st.off()).put('\n');
  if (ctx.siginfo() != nullptr && !ctx.is_kernel_fault()) {
    f.put("sender    pid ").dec(ctx.siginfo()->si_pid).put(" uid ").udec(ctx.siginfo()->si_uid).put('\n');
  }
  // A signal a process sent has no fault address (si_addr overlaps the sender's pid), except the SIGBUS
  // faultline queues for a failed page (SI_QUEUE, the page in si_addr).
  const bool has_address = ctx.is_kernel_fault() || (ctx.signal() == SIGBUS && ctx.code() == SI_QUEUE);
  if (has_address) {
    f.put("address   ").put(st.bold()).hex(ctx.address()).put(st.off());
    if (ctx.access() != Access::unknown) {
      f.put("  access ").put(st.bold()).put(access_name(ctx.access())).put(st.off())
          .put(ctx.hw_present() ? " (page present, protection forbade it)" : " (page not present)");
    }
    f.put('\n');
  }
  if (overflow != nullptr) {
    f.put(st.red()).put("cause     stack overflow").put(st.off()).put(" (thread stack ").hex(overflow->stack_lo)
        .put('-').hex(overflow->stack_hi).put(")\n");
  }
  if (cause != nullptr) f.put(st.red()).put("cause     ").put(cause).put(st.off()).put('\n');
  os::MapsEntry m;
  if (has_address && ctx.address() != 0) {
    f.put("mapping   ");
    if (os::find_mapping(ctx.address(), &m)) put_mapping(f, m);
    else f.put("none (no mapping holds this address)");
    f.put('\n');
  }
  if (has_address && ctx.address() != 0) trap::describe_address(ctx.address(), describe_sink, &f);

  f.put(st.dim()).put("registers").put(st.off()).put('\n');
  for (unsigned i = 0; i < arch::kRegCount; ++i) {
    f.put("  ").pad(A::reg_name(i), 7).hex(A::reg(*ctx.ucontext(), i), 16);
    f.put((i % 3 == 2 || i + 1 == arch::kRegCount) ? "\n" : "  ");
  }
  f.put("  err    ").hex(ctx.hw_error_code(), 16).put('\n');

  if (backtrace) {
    f.put(st.dim()).put("backtrace").put(st.off()).put('\n');
    unsigned n = backtrace_libunwind(f, st, ctx, max_frames);
    if (n <= 1) {
      f.put("  (libunwind found no caller; frame-pointer walk)\n");
      backtrace_frame_pointers(f, st, ctx, max_frames);
    }
  }
  f.put("*** faultline: passing ").put(ctx.signal_name()).put(" on to the previous action ***\n");
  f.flush();
}

namespace {

struct FatalCall {
  const FaultContext* ctx;
  const StackOverflow* overflow;
  const char* cause;
};

void write_fatal(void* p) noexcept {
  const FatalCall& c = *static_cast<const FatalCall*>(p);
  write_report(*c.ctx, g_config.fd.load(std::memory_order_relaxed), g_config.color.load(std::memory_order_relaxed),
               g_config.backtrace.load(std::memory_order_relaxed), g_config.max_frames.load(std::memory_order_relaxed),
               c.overflow != nullptr ? "stack overflow" : nullptr, c.overflow, c.cause);
}

// True when this handler runs on the thread's alternate stack with less than os::kHandlerStackRoom bytes
// left below it: the report (reading /proc/self/maps, unwinding) would run off its end.
[[gnu::noinline]] bool short_of_stack() noexcept {
  const auto here = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
  std::uintptr_t lo, hi;
  return trap::altstack_around(here, &lo, &hi) && here < lo + os::kHandlerStackRoom;
}

}  // namespace

void fatal_hook(const FaultContext& ctx, const StackOverflow* overflow, const char* cause) noexcept {
  FatalCall call{&ctx, overflow, cause};
  if (short_of_stack() && !g_spare_stack.busy.exchange(true, std::memory_order_acquire)) {
    if (const std::uintptr_t top = g_spare_stack.top.load(std::memory_order_acquire); top != 0) {
      arch::Current::call_on_stack(write_fatal, &call, reinterpret_cast<void*>(top));
    } else {
      write_fatal(&call);
    }
    g_spare_stack.busy.store(false, std::memory_order_release);
    return;
  }
  write_fatal(&call);
}

void write(const FaultContext& ctx, int fd, const char* reason) noexcept {
  write_report(ctx, fd, g_config.color.load(std::memory_order_relaxed), true,
               g_config.max_frames.load(std::memory_order_relaxed), reason, nullptr, nullptr);
}

}  // namespace faultline::report
