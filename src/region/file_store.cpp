// region/file_store.cpp: FileStore, a provider that reads a region's pages from a file: opening and
// closing (the fill itself is in file_store_fill.cpp, on the signal path).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/page.hpp"
#include "faultline/region.hpp"
#include "os/linux/syscall.hpp"

namespace faultline {

FillStatus file_store_writeback(const FillRequest& req, void* data) {
  auto* store = static_cast<FileStore*>(data);
  std::size_t done = 0;
  while (done < req.length) {
    const ssize_t n = pwrite(store->fd_, req.dest + done, req.length - done,
                             static_cast<off_t>(store->offset_ + req.offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return FillStatus{n < 0 ? errno : EIO, "pwrite to the file store failed"};
    done += static_cast<std::size_t>(n);
  }
  return {};
}

FillFn FileStore::writeback_fn() noexcept { return file_store_writeback; }

Result<FileStore> FileStore::open(const std::string& path, std::uint64_t offset, bool writable) {
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
  return s;
}

FileStore::FileStore(FileStore&& o) noexcept : fd_(o.fd_), offset_(o.offset_), size_(o.size_) { o.fd_ = -1; }

FileStore& FileStore::operator=(FileStore&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) close(fd_);
    fd_ = o.fd_;
    offset_ = o.offset_;
    size_ = o.size_;
    o.fd_ = -1;
  }
  return *this;
}

FileStore::~FileStore() {
  if (fd_ >= 0) close(fd_);
}

FillFn FileStore::fill_fn() noexcept { return file_store_fill; }

}  // namespace faultline
