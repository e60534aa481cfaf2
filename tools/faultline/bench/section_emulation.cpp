// tools/faultline/bench/section_emulation.cpp: what decoding, emulating and healing add to a fault.
//
// Baseline: a fault on a PROT_NONE page whose faultline handler resumes after the instruction it
// already knows (PC += 4, no decoding): the plain round trip. Then the same fault with the handler
// decoding and emulating the load against another page, and a fault healed by rewriting the base
// register so that the load re-executes against the object's new copy.
#include <sys/mman.h>
#include <unistd.h>

#include "bench/sections.hpp"
#include "faultline/emulate.hpp"
#include "faultline/trap.hpp"

namespace faultline::bench {

namespace {

enum class Mode { skip, emulate, heal };
Mode g_mode = Mode::skip;
std::uintptr_t g_old = 0, g_new = 0;
std::size_t g_psize = 4096;

std::uintptr_t forward(std::uintptr_t a, void*) {
  return a >= g_old && a < g_old + g_psize ? g_new + (a - g_old) : 0;
}

Disposition handler(FaultContext& ctx, void*) {
  if (ctx.address() < g_old || ctx.address() >= g_old + g_psize) return Disposition::declined;
  switch (g_mode) {
    case Mode::skip:
      ctx.set_pc(ctx.pc() + 4);  // movq 64(%rdi), %rax is 4 bytes
      return Disposition::resolved;
    case Mode::emulate:
      return emulate(ctx, g_new + (ctx.address() - g_old)) == EmulateStatus::ok ? Disposition::resolved
                                                                                : Disposition::declined;
    case Mode::heal:
      return faultline::heal(ctx, forward, nullptr) == EmulateStatus::ok ? Disposition::resolved
                                                                        : Disposition::declined;
  }
  return Disposition::declined;
}

double loads(Mode mode, unsigned n) {
  g_mode = mode;
  std::uint64_t sink = 0;
  const double t0 = now_ns();
  for (unsigned i = 0; i < n; ++i) {
    std::uintptr_t p = g_old;  // each load starts from the old address
    std::uint64_t v;
#if defined(__x86_64__)
    asm volatile("movq 64(%1), %0" : "=a"(v), "+D"(p) : : "memory");
#elif defined(__aarch64__)
    asm volatile("ldr %0, [%1, #64]" : "=r"(v), "+r"(p) : : "memory");
#endif
    sink += v;
  }
  asm volatile("" : : "r"(sink));
  return (now_ns() - t0) / n;
}

}  // namespace

void section_emulation(Bench& b) {
  if (!b.wants("emulation")) return;
  g_psize = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  Mapping old_page(g_psize, PROT_NONE), new_page(g_psize, PROT_READ | PROT_WRITE);
  g_old = reinterpret_cast<std::uintptr_t>(old_page.data());
  g_new = reinterpret_cast<std::uintptr_t>(new_page.data());
  auto id = add_handler(handler, nullptr, trap_segv);
  if (!id) die("add_handler: " + id.error().message());
  const unsigned n = b.options().quick ? 300 : 2000;
  const std::string base = "plain fault round trip (PC += 4)";
  const Target t{Target::Kind::ratio_at_most, 1.10, "<= 1.10x", "emulation"};
  b.compare("emulation", "fault + decode + emulate", base, [&] { return loads(Mode::skip, n); },
            [&] { return loads(Mode::emulate, n); }, t);
  b.compare("emulation", "fault + decode + heal (re-executed)", base, [&] { return loads(Mode::skip, n); },
            [&] { return loads(Mode::heal, n); }, t);
  (void)remove_handler(*id);
}

}  // namespace faultline::bench
