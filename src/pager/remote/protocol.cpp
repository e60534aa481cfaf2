// pager/remote/protocol.cpp: validating the remote pager's messages (see protocol.hpp). Not signal path;
// pure functions.
#include "pager/remote/protocol.hpp"

#include <cerrno>
#include <cstring>

namespace faultline::remote {

namespace {

bool pow2(std::uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

bool terminated(const char* s, std::size_t cap) { return std::memchr(s, '\0', cap) != nullptr; }

}  // namespace

const char* parse_hello(const void* bytes, std::size_t len, std::uint64_t page_size, Hello* out) noexcept {
  if (len != sizeof(Hello)) return "a hello of the wrong size";
  std::memcpy(out, bytes, sizeof(Hello));
  if (out->magic != kMagic || out->type != kHello) return "not a hello";
  if (out->version != kVersion) return "a protocol version this side does not speak";
  if (!pow2(out->page_size) || out->page_size != page_size) return "a page size other than this process's";
  if (out->size == 0 || out->size % out->page_size != 0 || out->base % out->page_size != 0) {
    return "a region that is not whole pages";
  }
  if (out->base + out->size < out->base) return "a region that wraps around";
  if (!terminated(out->name, sizeof out->name)) return "a region name without its terminator";
  return nullptr;
}

const char* parse_request(const void* bytes, std::size_t len, std::uint64_t page_size, std::uint64_t size,
                          Request* out) noexcept {
  if (len != sizeof(Request)) return "a request of the wrong size";
  std::memcpy(out, bytes, sizeof(Request));
  if (out->magic != kMagic || out->type != kRequest) return "not a request";
  if (out->length == 0 || out->length % page_size != 0 || out->offset % page_size != 0) {
    return "a request that is not whole pages";
  }
  if (out->offset >= size || out->length > size - out->offset) return "a request outside the region";
  if (out->write > 1) return "a request with an unknown access";
  return nullptr;
}

const char* parse_reply(const void* bytes, std::size_t len, Reply* out) noexcept {
  if (len != sizeof(Reply)) return "a reply of the wrong size";
  std::memcpy(out, bytes, sizeof(Reply));
  if (out->magic != kMagic || out->type != kReply) return "not a reply";
  if (out->error < 0 || out->error >= 4096) return "a reply with an error out of range";
  if (!terminated(out->reason, sizeof out->reason)) return "a reply reason without its terminator";
  return nullptr;
}

}  // namespace faultline::remote
