// os/linux/thread_start.hpp: starting faultline's own threads (the userfaultfd handler, the evictor,
// pager threads, the remote pager's watchdog) through one door, so that a failure to create a thread,
// real or injected (Op::thread_create), is an error with a message and never an exception. Not signal
// path.
#pragma once

#include <cerrno>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include "faultline/result.hpp"
#include "os/linux/inject.hpp"

namespace faultline::os {

template <class F>
Result<std::thread> start_thread(const char* what, F&& fn) {
  if (const long e = inject::point(fault_injection::Op::thread_create); e != 0) {
    return Error::from_errno((std::string("cannot start the ") + what).c_str(), static_cast<int>(-e));
  }
  try {
    return std::thread(std::forward<F>(fn));
  } catch (const std::system_error& e) {
    return Error(Errc::system_error, std::string("cannot start the ") + what + ": " + e.what());
  } catch (const std::bad_alloc&) {
    return Error(Errc::no_space, std::string("cannot start the ") + what + ": out of memory");
  }
}

}  // namespace faultline::os
