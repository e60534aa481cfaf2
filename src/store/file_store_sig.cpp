// store/file_store_sig.cpp: FileStore's fill (signal path: the signal backend runs a provider's fill in
// the faulting thread's handler). Raw system calls only; short reads at the end of the file leave
// zeros, like mmap past EOF. Into a shmem cache (FillRequest::dest_fd, handler threads only) the file's
// pages are spliced, runs of 64 KiB or more: the kernel copies page-cache pages into the cache's, with
// no page fault on `dest`;
// whatever splice cannot place is read with pread.
#include <fcntl.h>

#include <cerrno>
#include <cstring>

#include "faultline/store.hpp"
#include "os/linux/syscall.hpp"

namespace faultline {

namespace {

// Splices bytes [off, off + len) of `fd` to offset `out_off` of `out` through a pipe of its own (1 MiB
// where the system allows it). Returns how many bytes were placed from the start (fewer at the end of
// the file, or where a call failed).
std::size_t splice_range(int fd, long off, int out, long out_off, std::size_t len) noexcept {
  int p[2];
  if (os::is_err(os::raw_pipe2(p, O_CLOEXEC))) return 0;
  (void)os::raw_fcntl(p[1], F_SETPIPE_SZ, 1 << 20);  // fewer, larger splices; the default works too
  std::size_t done = 0;
  bool stop = false;
  while (done < len && !stop) {
    long in_off = off + static_cast<long>(done);
    const long n = os::raw_splice(fd, &in_off, p[1], nullptr, len - done, SPLICE_F_MOVE);
    if (n == -EINTR) continue;
    if (n <= 0) break;  // end of file, or an error: the caller reads the rest
    std::size_t moved = 0;
    while (moved < static_cast<std::size_t>(n)) {
      long o = out_off + static_cast<long>(done + moved);
      const long k = os::raw_splice(p[0], nullptr, out, &o, static_cast<std::size_t>(n) - moved, SPLICE_F_MOVE);
      if (k == -EINTR) continue;
      if (k <= 0) {
        stop = true;  // what stays in the pipe is dropped with it; the caller reads it again
        break;
      }
      moved += static_cast<std::size_t>(k);
    }
    done += moved;
  }
  os::raw_close(p[0]);
  os::raw_close(p[1]);
  return done;
}

}  // namespace

// Below this, a pipe and four system calls cost more than the page faults a pread into `dest` takes.
constexpr std::size_t kSpliceFrom = std::size_t{64} << 10;

FillStatus FileStore::fill(const FillRequest& req) {
  std::size_t done = 0;
  if (req.dest_fd >= 0 && req.length >= kSpliceFrom) {
    done = splice_range(fd_, static_cast<long>(offset_ + req.offset), req.dest_fd, static_cast<long>(req.dest_offset),
                        req.length);
  }
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
