// faultline/remote_pager.hpp: a pager region served by another process (userfaultfd only).
//
//   // The program:                                  // The pager process (the other end of `sv`):
//   faultline::RegionOptions o;                      auto rr = faultline::remote_pager::receive(sv[1]);
//   o.policy = faultline::Policy::pager;             rr.value().serve(fill_from_my_memory, &image);
//   o.remote_pager_socket = sv[0];
//   auto r = faultline::reserve_region(size, o);
//
// The program reserves the region with RegionOptions::remote_pager_socket set to its end of a connected
// Unix stream socket (and, optionally, the credentials the pager must have: remote_pager_uid/_pid,
// checked with SO_PEERCRED before anything is sent): faultline gives the region a userfaultfd of its own
// and sends it (SCM_RIGHTS) with the region's description. The pager process receives it with receive()
// and serves with RemoteRegion::serve(). A thread of the program reads the region's faults and sends the
// pager one request per faulting page; the pager fills the page from its own memory, copies it in with
// UFFDIO_COPY and answers. A request not answered within the region's fill_timeout fails its page; if
// the pager process dies or sends anything but a valid answer, every pending and every later fault fails
// at once. A failed page gives the faulting thread, and any later access, SIGBUS with a report naming the
// region and the cause ("the remote pager ... went away", "did not answer within fill_timeout"): never a
// zero page and never a hang, whatever the region's size. Both ends validate every message.
//
// Thread-safety: receive() and serve() may run on any thread; one thread serves a RemoteRegion.
// Nothing here is async-signal-safe.
#pragma once

#include <cstdint>

#include "faultline/result.hpp"
#include "faultline/store.hpp"

namespace faultline::remote_pager {

// What the pager process learns about the region it serves.
struct RegionDescription {
  std::uint64_t base = 0, size = 0, page_size = 0;
  char name[64] = {};
};

class RemoteRegion {
 public:
  RemoteRegion() = default;
  RemoteRegion(RemoteRegion&& o) noexcept : uffd_(o.uffd_), sock_(o.sock_), desc_(o.desc_) { o.uffd_ = -1; }
  RemoteRegion& operator=(RemoteRegion&&) = delete;
  RemoteRegion(const RemoteRegion&) = delete;
  ~RemoteRegion();
  const RegionDescription& description() const noexcept { return desc_; }
  // Serves the program's requests until it closes the socket (or the region) or `stop` returns true
  // (checked at least every 100 ms). `fn` fills FillRequest::dest (a buffer of this process) for
  // req.offset/req.length; a failure is sent back and the page fails in the program with that error.
  // Errc::invalid_argument when the program sends something that is not a valid request.
  Result<void> serve(FillFn fn, void* data, bool (*stop)(void*) = nullptr, void* stop_data = nullptr);

 private:
  friend Result<RemoteRegion> receive(int socket);
  int uffd_ = -1;
  int sock_ = -1;  // not owned
  RegionDescription desc_{};
};

// In the pager process: receives one region from the program over `socket`.
Result<RemoteRegion> receive(int socket);

}  // namespace faultline::remote_pager
