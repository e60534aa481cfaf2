// tests/fuzz/fuzz_remote.cpp: libFuzzer throws arbitrary bytes at both ends of the remote pager's
// protocol (pager/remote/protocol.hpp): as a hello, a request and a reply. A parser must never read past
// what it is given, and what it accepts must keep every invariant the two ends rely on (a hello of whole
// pages inside the address space, a request of whole pages inside the region, a reply with an errno in
// range and a terminated reason). ASan checks the reads; the invariants abort.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "pager/remote/protocol.hpp"

using namespace faultline::remote;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Exactly `size` bytes, in memory of their own, so that ASan sees a read past them.
  std::vector<std::uint8_t> bytes(data, data + size);
  const std::uint64_t page = 4096;
  Hello h;
  if (parse_hello(bytes.data(), bytes.size(), page, &h) == nullptr) {
    if (h.size == 0 || h.size % page != 0 || h.base % page != 0 || h.base + h.size < h.base) std::abort();
    if (std::memchr(h.name, '\0', sizeof h.name) == nullptr) std::abort();
  }
  const std::uint64_t region = (std::uint64_t{1} << 30);
  Request q;
  if (parse_request(bytes.data(), bytes.size(), page, region, &q) == nullptr) {
    if (q.length == 0 || q.length % page != 0 || q.offset % page != 0) std::abort();
    if (q.offset >= region || q.length > region - q.offset) std::abort();
  }
  Reply a;
  if (parse_reply(bytes.data(), bytes.size(), &a) == nullptr) {
    if (a.error < 0 || a.error >= 4096 || std::memchr(a.reason, '\0', sizeof a.reason) == nullptr) std::abort();
  }
  return 0;
}
