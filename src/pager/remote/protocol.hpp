// pager/remote/protocol.hpp: the messages between a program and the pager process that serves one of
// its regions, and their validation. Pure functions over bytes: no system call, no allocation, usable by
// both ends and by the fuzz target (tests/fuzz/fuzz_remote.cpp). Not signal path.
//
// The program sends one Hello with the region's own userfaultfd (SCM_RIGHTS); then, for each fault its
// watchdog thread reads from that userfaultfd, a Request; the pager process fills the pages, copies them
// in itself (UFFDIO_COPY on the fd it received, which wakes the faulting thread) and sends a Reply: error 0,
// or an errno value and a reason, after which the program fails the page. Every message is a fixed-size
// record that starts with a magic and its type; anything else is rejected by the side that receives it.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>

namespace faultline::remote {

constexpr std::uint32_t kMagic = 0x50524c46;  // "FLRP"
constexpr std::uint32_t kVersion = 1;
enum : std::uint32_t { kHello = 1, kRequest = 2, kReply = 3 };

struct Hello {
  std::uint32_t magic, type, version, reserved;
  std::uint64_t base, size, page_size;
  char name[64];
};
struct Request {
  std::uint32_t magic, type;
  std::uint64_t seq;
  std::uint64_t offset, length;  // bytes into the region, whole pages
  std::uint32_t write;           // 1: the access was a write
  std::int32_t tid;              // the faulting thread (0 when unknown)
};
struct Reply {
  std::uint32_t magic, type;
  std::uint64_t seq;
  std::int32_t error;            // 0: the pages are in; an errno value otherwise
  std::uint32_t reserved;
  char reason[96];               // NUL-terminated
};

// Each returns nullptr when the bytes are a valid message of that kind (copied into *out), or why not.
// `page_size` is the receiver's own page size; `size` the region's.
const char* parse_hello(const void* bytes, std::size_t len, std::uint64_t page_size, Hello* out) noexcept;
const char* parse_request(const void* bytes, std::size_t len, std::uint64_t page_size, std::uint64_t size,
                          Request* out) noexcept;
const char* parse_reply(const void* bytes, std::size_t len, Reply* out) noexcept;

// The msghdr both ends use for a Hello: one record (`iov`) and a buffer for the descriptors that travel
// with it (SCM_RIGHTS). No system call; `iov` and `control` must outlive the message.
inline msghdr hello_message(iovec& iov, void* control, std::size_t control_len) noexcept {
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = control_len;
  return msg;
}

}  // namespace faultline::remote
