// core/result.cpp: names and messages for faultline's error codes. Not signal-safe (allocates).
#include "faultline/result.hpp"

#include <cstring>

namespace faultline {

const char* errc_name(Errc code) noexcept {
  switch (code) {
    case Errc::ok: return "ok";
    case Errc::invalid_argument: return "invalid_argument";
    case Errc::not_installed: return "not_installed";
    case Errc::already_exists: return "already_exists";
    case Errc::not_found: return "not_found";
    case Errc::no_space: return "no_space";
    case Errc::overridden: return "overridden";
    case Errc::unsupported: return "unsupported";
    case Errc::system_error: return "system_error";
    case Errc::busy: return "busy";
    case Errc::timed_out: return "timed_out";
  }
  return "unknown";
}

Error Error::from_errno(const char* what, int err) {
  std::string m(what);
  m += ": ";
  m += strerrorname_np(err) ? strerrorname_np(err) : "E?";
  m += " (";
  m += std::strerror(err);
  m += ")";
  return Error(err == ENOSYS || err == EOPNOTSUPP ? Errc::unsupported : Errc::system_error, std::move(m));
}

}  // namespace faultline
