// tools/catch/catch_preload.cpp: libfaultline_catch.so, the library `faultline catch` preloads.
//
// At load it installs faultline for SIGSEGV, SIGBUS, SIGILL, SIGFPE and SIGABRT (abort(), a failed
// assert, an uncaught C++ exception, whose type and what() a terminate handler writes first) and enables
// the crash report
// (FAULTLINE_CATCH_FD, FAULTLINE_CATCH_COLOR), and with FAULTLINE_STATS (`faultline catch --stats`) the
// counters' summary at exit. It interposes sigaction() and signal() so that a handler
// the program installs for one of those signals does not displace faultline: the program's handler
// becomes faultline's previous action (faultline::reassert), so faults reach faultline first and then
// the program's handler, with its semantics. The program sees its own view of the actions in `oldact`.
// When the program's handler, running as faultline's previous action, gives up (sets SIG_DFL to die by
// the signal, the usual idiom), the report of the fault is written first.
#include <dlfcn.h>
#include <signal.h>
#include <unistd.h>

#include <cxxabi.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <typeinfo>

#include "faultline/region.hpp"
#include "faultline/report.hpp"
#include "faultline/trap.hpp"

namespace {

using SigactionFn = int (*)(int, const struct sigaction*, struct sigaction*);
SigactionFn g_real = nullptr;
bool g_ready = false;
int g_fd = 2;
struct sigaction g_program_view[65];  // what the program believes is installed, per signal
__thread int t_inside = 0;             // faultline itself is calling sigaction

bool caught(int sig) { return sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE || sig == SIGABRT; }

std::terminate_handler g_prev_terminate = nullptr;

// std::terminate: names the uncaught exception (its demangled type, and what() for a std::exception),
// then the previous handler (libstdc++'s prints its own line and aborts: the SIGABRT report follows).
// Not signal context: allocating and rethrowing are allowed here.
[[noreturn]] void on_terminate() {
  if (const std::type_info* t = abi::__cxa_current_exception_type(); t != nullptr) {
    int status = 0;
    char* demangled = abi::__cxa_demangle(t->name(), nullptr, nullptr, &status);
    std::string line = std::string("*** faultline: uncaught exception of type ") + (demangled != nullptr ? demangled : t->name());
    std::free(demangled);
    try {
      throw;
    } catch (const std::exception& e) {
      line += std::string(": what(): ") + e.what();
    } catch (...) {
    }
    line += " ***\n";
    (void)!write(g_fd, line.data(), line.size());
  }
  if (g_prev_terminate != nullptr) g_prev_terminate();
  std::abort();
}

int real_sigaction(int sig, const struct sigaction* act, struct sigaction* old) {
  if (g_real == nullptr) g_real = reinterpret_cast<SigactionFn>(dlsym(RTLD_NEXT, "sigaction"));
  return g_real(sig, act, old);
}

__attribute__((constructor)) void catch_init() {
  g_real = reinterpret_cast<SigactionFn>(dlsym(RTLD_NEXT, "sigaction"));
  for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT}) real_sigaction(sig, nullptr, &g_program_view[sig]);
  const char* fd_env = secure_getenv("FAULTLINE_CATCH_FD");
  const char* color_env = secure_getenv("FAULTLINE_CATCH_COLOR");
  faultline::report::Options opts;
  if (fd_env != nullptr) opts.fd = std::atoi(fd_env);
  g_fd = opts.fd;
  if (color_env != nullptr) {
    opts.color = std::strcmp(color_env, "0") == 0 ? faultline::report::Color::never : faultline::report::Color::always;
  }
  t_inside++;
  faultline::InstallOptions io;
  io.signals = faultline::trap_segv | faultline::trap_bus | faultline::trap_ill | faultline::trap_fpe | faultline::trap_abrt;
  auto r = faultline::install(io);
  if (r) r = faultline::report::enable(opts);
  t_inside--;
  g_ready = r.ok();
  if (g_ready) g_prev_terminate = std::set_terminate(on_terminate);
  if (!r) std::fprintf(stderr, "faultline catch: could not install the crash report: %s\n", r.error().message().c_str());
  // faultline catch --stats (FAULTLINE_STATS): the counters' summary when the program exits.
  if (const char* st = secure_getenv("FAULTLINE_STATS"); st != nullptr && *st != '\0' && std::strcmp(st, "0") != 0) {
    faultline::print_stats();
  }
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) int sigaction(int sig, const struct sigaction* act, struct sigaction* old) {
  if (!g_ready || t_inside != 0 || !caught(sig)) return real_sigaction(sig, act, old);
  struct sigaction before = g_program_view[sig];
  if (act == nullptr) {
    if (old != nullptr) *old = before;
    return 0;
  }
  if (faultline::in_handler()) {
    // Inside the program's handler, reached through faultline. Giving up (SIG_DFL, to die of the
    // signal): write the report of the fault now, then let the action through as it is.
    const bool gives_up = !(act->sa_flags & SA_SIGINFO) && act->sa_handler == SIG_DFL;
    if (gives_up) {
      if (const faultline::FaultContext* ctx = faultline::active_fault(); ctx != nullptr) {
        faultline::report::write(*ctx, g_fd, "fatal signal (the program's own handler gave up)");
      }
    }
    g_program_view[sig] = *act;
    const int r = real_sigaction(sig, act, nullptr);
    if (old != nullptr) *old = before;
    return r;
  }
  t_inside++;
  int r = real_sigaction(sig, act, nullptr);
  if (r == 0) {
    g_program_view[sig] = *act;
    (void)faultline::reassert();  // faultline on top again, the program's handler as its previous action
  }
  t_inside--;
  if (old != nullptr && r == 0) *old = before;
  return r;
}

__attribute__((visibility("default"))) sighandler_t signal(int sig, sighandler_t handler) {
  // glibc's signal(): BSD semantics (SA_RESTART, the signal blocked while its handler runs).
  struct sigaction act {}, old{};
  act.sa_handler = handler;
  act.sa_flags = SA_RESTART;
  sigemptyset(&act.sa_mask);
  sigaddset(&act.sa_mask, sig);
  if (sigaction(sig, &act, &old) != 0) return SIG_ERR;
  return old.sa_handler;
}

__attribute__((visibility("default"))) sighandler_t bsd_signal(int sig, sighandler_t handler) {
  return signal(sig, handler);
}

}  // extern "C"
