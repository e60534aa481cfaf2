// thread/world.hpp: state shared by the stop-the-world controller (world.cpp) and the stop signal's
// handler (world_sig.cpp). Internal.
#pragma once

#include <signal.h>

#include <atomic>
#include <cstdint>

namespace faultline::world::detail {

struct WorldState {
  std::atomic<std::uint32_t> stop_epoch{0};    // bumped by each stop()
  std::atomic<std::uint32_t> resume_epoch{0};  // set to the stop epoch by resume() (futex word)
  std::atomic<int> signal{0};                  // the stop signal once installed
  std::atomic<unsigned> drop{0};               // testing: stop signals to ignore
  std::atomic<std::uint64_t> sent{0};
  // The controller's doorbell: acknowledgements are per thread (ThreadState::ack); a thread that
  // acknowledges rings this word only when the controller sleeps on it (`controller_waiting`), so a
  // stop costs one wake-up of the controller per sleep, not one per thread.
  std::atomic<std::uint32_t> doorbell{0};
  std::atomic<std::uint32_t> controller_waiting{0};
};
extern WorldState g_world;

// The stop signal's handler (signal path).
void on_stop_signal(int sig, siginfo_t* info, void* uc) noexcept;

}  // namespace faultline::world::detail
