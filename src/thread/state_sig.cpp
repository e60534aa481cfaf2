// thread/state_sig.cpp: the per-thread state pointer (signal path).
#include "thread/state.hpp"

namespace faultline::thread {

namespace {
// initial-exec: the variable lives in the static TLS block, so a handler reads it without calling
// __tls_get_addr (which may allocate on first use in a dlopen'ed library).
__attribute__((tls_model("initial-exec"))) constinit thread_local ThreadState* t_current = nullptr;
}  // namespace

ThreadState* current() noexcept { return t_current; }
void set_current(ThreadState* ts) noexcept { t_current = ts; }

}  // namespace faultline::thread
