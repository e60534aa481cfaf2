// core/format.hpp: an allocation-free text formatter for signal context.
//
// Formats strings, decimal and hexadecimal numbers into a caller-provided fixed buffer. When the buffer
// fills, the optional sink is called with its contents and the buffer starts again, so a report of any
// length can be written through a few hundred bytes of stack. Never allocates, never locks, never
// touches errno, no stdio. Async-signal-safe; one Formatter per thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>

namespace faultline::core {

class Formatter {
 public:
  // Called with the buffered bytes when the buffer is full and at flush(). May be null: then text
  // beyond the capacity is dropped (truncated() says so).
  using Sink = void (*)(void* ctx, const char* data, std::size_t len);

  Formatter(char* buf, std::size_t cap, Sink sink = nullptr, void* ctx = nullptr) noexcept
      : buf_(buf), cap_(cap), sink_(sink), ctx_(ctx) {}
  Formatter(const Formatter&) = delete;
  Formatter& operator=(const Formatter&) = delete;

  Formatter& put(char c) noexcept;
  Formatter& put(const char* s) noexcept;              // null prints "(null)"
  Formatter& put(const char* s, std::size_t n) noexcept;
  Formatter& dec(std::int64_t v) noexcept;
  Formatter& udec(std::uint64_t v) noexcept;
  // Hex with "0x" prefix; `width` > 0 pads with zeros to that many digits.
  Formatter& hex(std::uint64_t v, int width = 0) noexcept;
  // Hex digits only, no prefix.
  Formatter& hex_digits(std::uint64_t v, int width) noexcept;
  // Left-aligned `s` padded with spaces to `width` columns.
  Formatter& pad(const char* s, int width) noexcept;

  // Hands buffered bytes to the sink (if any) and empties the buffer.
  void flush() noexcept;

  const char* data() const noexcept { return buf_; }
  std::size_t size() const noexcept { return len_; }
  bool truncated() const noexcept { return truncated_; }
  // NUL-terminates in place (the terminator is not counted in size()); returns data().
  const char* c_str() noexcept;

 private:
  char* buf_;
  std::size_t cap_;
  std::size_t len_ = 0;
  Sink sink_;
  void* ctx_;
  bool truncated_ = false;
};

// Allocation-free helpers shared by signal-path code.
std::size_t str_len(const char* s) noexcept;
bool str_eq(const char* a, const char* b) noexcept;
bool str_starts_with(const char* s, const char* prefix) noexcept;
// Parses hex digits (no prefix) from s; stops at the first non-hex character; *end gets its position.
std::uint64_t parse_hex(const char* s, const char** end) noexcept;

}  // namespace faultline::core
