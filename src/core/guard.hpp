// core/guard.hpp: the exception wall of the public API. Every public call that can allocate runs its body
// through guarded(), so that no exception ever leaves the library: an allocation failure becomes
// Errc::no_space, anything else Errc::system_error. The messages are short literals (no allocation
// beyond the small-string buffer). Not signal path.
#pragma once

#include <exception>
#include <new>
#include <utility>

#include "faultline/result.hpp"

namespace faultline::core {

template <class F>
auto guarded(F&& body) noexcept -> decltype(body()) {
  try {
    return std::forward<F>(body)();
  } catch (const std::bad_alloc&) {
    return Error(Errc::no_space, "out of memory");
  } catch (...) {
    return Error(Errc::system_error, "internal error");
  }
}

}  // namespace faultline::core
