// store/file_store_sig.cpp: FileStore's fill (signal path: the signal backend runs a provider's fill in
// the faulting thread's handler). Raw pread only; short reads at the end of the file leave zeros, like
// mmap past EOF.
#include <cerrno>
#include <cstring>

#include "faultline/store.hpp"
#include "os/linux/syscall.hpp"

namespace faultline {

FillStatus FileStore::fill(const FillRequest& req) {
  std::size_t done = 0;
  while (done < req.length) {
    const long n = os::raw_pread(fd_, req.dest + done, req.length - done, static_cast<long>(offset_ + req.offset + done));
    if (n == -EINTR) continue;
    if (os::is_err(n)) return FillStatus{static_cast<int>(-n), "pread of the file store failed"};
    if (n == 0) break;  // end of file
    done += static_cast<std::size_t>(n);
  }
  if (done < req.length) std::memset(req.dest + done, 0, req.length - done);
  return {};
}

}  // namespace faultline
