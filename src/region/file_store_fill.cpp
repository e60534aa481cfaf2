// region/file_store_fill.cpp: FileStore's fill function (signal path: the signal backend runs providers
// in the faulting thread's handler).
#include <cstring>

#include "faultline/region.hpp"
#include "os/linux/syscall.hpp"

namespace faultline {

// Signal path as well (the signal backend runs providers in the faulting thread's handler): raw
// pread only. Short reads at the end of the file leave zeros, like mmap past EOF.
FillStatus file_store_fill(const FillRequest& req, void* data) {
  auto* store = static_cast<FileStore*>(data);
  std::size_t done = 0;
  while (done < req.length) {
    const long n = os::raw_pread(store->fd_, req.dest + done, req.length - done,
                                 static_cast<long>(store->offset_ + req.offset + done));
    if (n == -EINTR) continue;
    if (os::is_err(n)) return FillStatus{static_cast<int>(-n), "pread of the file store failed"};
    if (n == 0) break;  // end of file
    done += static_cast<std::size_t>(n);
  }
  if (done < req.length) std::memset(req.dest + done, 0, req.length - done);
  return {};
}

}  // namespace faultline
