// faultline/result.hpp: the error type every public call returns.
//
// A public call returns `Result<T>`: either a value or an `Error` with a code and a message that names
// what was wrong ("region [0x7f..000, +0x3000) overlaps region 'heap'"). Nothing in faultline throws
// across its API. Results are built only outside signal context (they may allocate the message).
//
// Thread-safety: values of these types are ordinary values. Async-signal-safety: none of this header's
// functions may be called from a signal handler (messages allocate).
#pragma once

#include <cassert>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace faultline {

// What went wrong, as a code a program can branch on. `message()` says it for a person.
enum class Errc : int {
  ok = 0,
  invalid_argument,   // the caller passed something faultline rejects (null, zero size, misaligned, ...)
  not_installed,      // the call needs install() first
  already_exists,     // overlapping registration, duplicate attach
  not_found,          // no such handler / region / thread
  no_space,           // a fixed-capacity table is full
  overridden,         // another component replaced faultline's signal handler
  unsupported,        // this kernel or machine cannot do it (the message says why)
  system_error,       // a system call failed (the message carries errno's name)
  busy,               // the call is not allowed from here right now (e.g. inside a fault handler)
  timed_out,          // a bounded wait ran out (the message names who did not answer)
};

// The name of an error code ("invalid_argument").
const char* errc_name(Errc code) noexcept;

class Error {
 public:
  Error(Errc code, std::string message) : code_(code), message_(std::move(message)) {}
  // A system call's failure: `what` is the call, `err` the errno value (positive).
  static Error from_errno(const char* what, int err);

  Errc code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }

 private:
  Errc code_;
  std::string message_;
};

// A value or an error. `Result<void>` carries only success or an error.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { assert(ok()); return std::get<0>(v_); }
  const T& value() const& { assert(ok()); return std::get<0>(v_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }

  const Error& error() const& { assert(!ok()); return std::get<1>(v_); }
  Error&& error() && { assert(!ok()); return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT

  bool ok() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  const Error& error() const& { assert(!ok_); return error_; }
  Error&& error() && { assert(!ok_); return std::move(error_); }

 private:
  Error error_{Errc::ok, {}};
  bool ok_ = true;
};

}  // namespace faultline
