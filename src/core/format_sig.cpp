// core/format_sig.cpp: the allocation-free formatter (signal path).
#include "core/format.hpp"

namespace faultline::core {

Formatter& Formatter::put(char c) noexcept {
  if (len_ + 1 >= cap_) {  // keep one byte for c_str()'s terminator
    if (sink_ != nullptr) {
      flush();
    } else {
      truncated_ = true;
      return *this;
    }
  }
  buf_[len_++] = c;
  return *this;
}

Formatter& Formatter::put(const char* s, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) put(s[i]);
  return *this;
}

Formatter& Formatter::put(const char* s) noexcept {
  if (s == nullptr) s = "(null)";
  while (*s != '\0') put(*s++);
  return *this;
}

Formatter& Formatter::udec(std::uint64_t v) noexcept {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) put(tmp[--n]);
  return *this;
}

Formatter& Formatter::dec(std::int64_t v) noexcept {
  if (v < 0) {
    put('-');
    return udec(~static_cast<std::uint64_t>(v) + 1);
  }
  return udec(static_cast<std::uint64_t>(v));
}

Formatter& Formatter::hex_digits(std::uint64_t v, int width) noexcept {
  static constexpr char kDigits[] = "0123456789abcdef";
  char tmp[16];
  int n = 0;
  do {
    tmp[n++] = kDigits[v & 0xf];
    v >>= 4;
  } while (v != 0);
  while (n < width && n < 16) tmp[n++] = '0';
  while (n > 0) put(tmp[--n]);
  return *this;
}

Formatter& Formatter::hex(std::uint64_t v, int width) noexcept {
  put("0x");
  return hex_digits(v, width);
}

Formatter& Formatter::pad(const char* s, int width) noexcept {
  int n = 0;
  if (s != nullptr) {
    for (; s[n] != '\0'; ++n) put(s[n]);
  }
  for (; n < width; ++n) put(' ');
  return *this;
}

void Formatter::flush() noexcept {
  if (sink_ != nullptr && len_ > 0) sink_(ctx_, buf_, len_);
  len_ = 0;
}

const char* Formatter::c_str() noexcept {
  buf_[len_ < cap_ ? len_ : cap_ - 1] = '\0';
  return buf_;
}

std::size_t str_len(const char* s) noexcept {
  std::size_t n = 0;
  while (s[n] != '\0') ++n;
  return n;
}

bool str_eq(const char* a, const char* b) noexcept {
  while (*a != '\0' && *a == *b) {
    ++a;
    ++b;
  }
  return *a == *b;
}

bool str_starts_with(const char* s, const char* prefix) noexcept {
  while (*prefix != '\0') {
    if (*s++ != *prefix++) return false;
  }
  return true;
}

std::uint64_t parse_hex(const char* s, const char** end) noexcept {
  std::uint64_t v = 0;
  for (;; ++s) {
    char c = *s;
    unsigned d;
    if (c >= '0' && c <= '9') d = static_cast<unsigned>(c - '0');
    else if (c >= 'a' && c <= 'f') d = static_cast<unsigned>(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') d = static_cast<unsigned>(c - 'A' + 10);
    else break;
    v = (v << 4) | d;
  }
  if (end != nullptr) *end = s;
  return v;
}

}  // namespace faultline::core
