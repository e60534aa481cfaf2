// os/linux/fork_hooks.cpp: the one pthread_atfork registration behind os/linux/fork_hooks.hpp. Not
// signal path.
#include "os/linux/fork_hooks.hpp"

#include <pthread.h>

#include <mutex>

namespace faultline::os::fork_hooks {

namespace {

constexpr int kMax = 16;
Hook g_hooks[kMax];
int g_count = 0;
std::mutex g_mutex;  // adding hooks (never held across fork)

void prepare() {
  for (int i = 0; i < g_count; ++i) {
    if (g_hooks[i].prepare != nullptr) g_hooks[i].prepare();
  }
}
void parent() {
  for (int i = g_count - 1; i >= 0; --i) {
    if (g_hooks[i].parent != nullptr) g_hooks[i].parent();
  }
}
void child() {
  for (int i = g_count - 1; i >= 0; --i) {
    if (g_hooks[i].child != nullptr) g_hooks[i].child();
  }
}

}  // namespace

void add(const Hook& hook) noexcept {
  static std::once_flag once;
  std::call_once(once, [] { pthread_atfork(prepare, parent, child); });
  std::lock_guard lock(g_mutex);
  int at = 0;
  while (at < g_count && g_hooks[at].order < hook.order) ++at;
  if ((at < g_count && g_hooks[at].order == hook.order) || g_count == kMax) return;
  for (int i = g_count; i > at; --i) g_hooks[i] = g_hooks[i - 1];
  g_hooks[at] = hook;
  ++g_count;
}

}  // namespace faultline::os::fork_hooks
