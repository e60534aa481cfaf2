// store/file_store.cpp: FileStore: opening, closing and write-back with pwrite. Not signal path (the
// fill, which the signal backend runs in a handler, is in file_store_sig.cpp).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/guard.hpp"
#include "core/page.hpp"
#include "faultline/store.hpp"
#include "os/linux/syscall.hpp"

namespace faultline {

Result<FileStore> FileStore::open(const std::string& path, std::uint64_t offset, bool writable) {
  return core::guarded([&]() -> Result<FileStore> {
    if (offset % core::page_size() != 0) {
      return Error(Errc::invalid_argument, "FileStore: offset " + std::to_string(offset) + " is not page-aligned");
    }
    const int fd = ::open(path.c_str(), (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) return Error::from_errno(("FileStore: open " + path).c_str(), errno);
    struct stat st{};
    if (fstat(fd, &st) != 0) {
      const int e = errno;
      close(fd);
      return Error::from_errno("FileStore: fstat", e);
    }
    FileStore s;
    s.fd_ = fd;
    s.offset_ = offset;
    s.size_ = static_cast<std::uint64_t>(st.st_size);
    s.writable_ = writable;
    return s;
  });
}

FileStore::FileStore(FileStore&& o) noexcept : fd_(o.fd_), offset_(o.offset_), size_(o.size_), writable_(o.writable_) {
  o.fd_ = -1;
}

FileStore& FileStore::operator=(FileStore&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) close(fd_);
    fd_ = o.fd_;
    offset_ = o.offset_;
    size_ = o.size_;
    writable_ = o.writable_;
    o.fd_ = -1;
  }
  return *this;
}

FileStore::~FileStore() {
  if (fd_ >= 0) close(fd_);
}

FillStatus FileStore::write_back(const WriteBackRequest* runs, std::size_t n, std::size_t* stored) {
  if (stored != nullptr) *stored = 0;
  if (!writable_) return FillStatus{EROFS, "the file store was opened read-only"};
  for (std::size_t i = 0; i < n; ++i) {
    const WriteBackRequest& w = runs[i];
    std::size_t done = 0;
    while (done < w.length) {
      const long k = os::raw_pwrite(fd_, w.src + done, w.length - done, static_cast<long>(offset_ + w.offset + done));
      if (k == -EINTR) continue;
      if (k <= 0) return FillStatus{k < 0 ? static_cast<int>(-k) : EIO, "pwrite to the file store failed"};
      done += static_cast<std::size_t>(k);
    }
    if (stored != nullptr) *stored = i + 1;
  }
  return {};
}

}  // namespace faultline
