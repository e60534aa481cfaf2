// os/linux/fork_hooks.hpp: what each part of faultline does around fork(), in one order. One
// pthread_atfork registration calls every hook: `prepare` in ascending order (take locks: the region
// table before the userfaultfd module's, as registration takes them), `parent` and `child` in descending
// order (release them; in the child, forget what belongs to the parent: its threads, its userfaultfds,
// epoch readers and pins of threads that do not exist in the child). Not signal path.
#pragma once

namespace faultline::os::fork_hooks {

// Orders: lower prepares first.
constexpr int kTrap = 10, kRegionTable = 20, kUffd = 30, kUffdHandler = 40, kUffdEvictor = 50, kMonitor = 60;

struct Hook {
  int order = 0;
  void (*prepare)() = nullptr;
  void (*parent)() = nullptr;
  void (*child)() = nullptr;
};

// Adds a hook (once per order; a second add with the same order is ignored). At most 16 hooks.
void add(const Hook& hook) noexcept;

}  // namespace faultline::os::fork_hooks
