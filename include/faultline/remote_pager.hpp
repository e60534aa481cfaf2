// faultline/remote_pager.hpp: a pager region served by another process (userfaultfd only).
//
//   // The program:                                  // The pager process (the other end of `sv`):
//   faultline::RegionOptions o;                      auto rr = faultline::remote_pager::receive(sv[1]);
//   o.policy = faultline::Policy::pager;             rr.value().serve(fill_from_my_memory, &image);
//   o.remote_pager_socket = sv[0];
//   auto r = faultline::reserve_region(size, o);
//
// The program reserves the region with RegionOptions::remote_pager_socket set to its end of a connected
// Unix stream socket: faultline gives the region a userfaultfd of its own, sends it (SCM_RIGHTS) with
// the region's description, and watches the socket. The pager process receives it with receive() and
// serves the faults with RemoteRegion::serve(), filling pages with UFFDIO_COPY from its own memory.
// If the pager process dies (the socket hangs up), faultline poisons every page still missing: the
// faulting threads, and any later access to such a page, get SIGBUS with a report naming the region
// ("the remote pager ... went away"), never a zero page and never a hang.
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
  RemoteRegion(RemoteRegion&& o) noexcept : uffd_(o.uffd_), desc_(o.desc_) { o.uffd_ = -1; }
  RemoteRegion& operator=(RemoteRegion&&) = delete;
  RemoteRegion(const RemoteRegion&) = delete;
  ~RemoteRegion();
  const RegionDescription& description() const noexcept { return desc_; }
  // Serves faults until the program closes the region or `stop` returns true (checked between
  // batches, at least every 100 ms). `fn` fills FillRequest::dest (a buffer of this process) for
  // req.offset/req.length; a failure poisons the page.
  Result<void> serve(FillFn fn, void* data, bool (*stop)(void*) = nullptr, void* stop_data = nullptr);

 private:
  friend Result<RemoteRegion> receive(int socket);
  int uffd_ = -1;
  RegionDescription desc_{};
};

// In the pager process: receives one region from the program over `socket`.
Result<RemoteRegion> receive(int socket);

}  // namespace faultline::remote_pager
