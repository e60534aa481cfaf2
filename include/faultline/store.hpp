// faultline/store.hpp: where the pages of provider and pager regions live when they are not resident.
//
// A store fills runs of pages (the first touch of a page, and the read-ahead window after it) and, when
// it is writable and the region asks for write-back, stores the runs written since (Region::flush(),
// Region::evict(), the resident-page watermark). Give a region a store, or just a fill function:
//
//   faultline::FillStatus load(const faultline::FillRequest& req, void* data) {
//     // Write req.length bytes at req.dest; ordinary code on a pager thread.
//     return read_object(data, req.offset, req.dest, req.length) ? faultline::FillStatus{}
//                                                                : faultline::FillStatus{EIO, "object store"};
//   }
//   o.fill = load;  o.fill_data = &objects;                    // a function, or
//   auto file = faultline::FileStore::open("heap.img", 0, true).value();
//   o.store = &file;  o.write_back = true;                      // an object (must outlive the region)
//
// Runs. A fill request is one run of whole pages (up to 512): a remote store can answer it with one
// pipelined request. `dest` is where the bytes go: a private view that becomes visible only when the
// fill returns, or, on paths that can fill in place, the page's final home; either way the store writes
// exactly `length` bytes there and nothing else. Write-back hands a store several runs at once.
//
// Failure. A fill that fails (an errno value and a static reason) makes the faulting access end in
// SIGBUS with a report naming the region and the cause, never a zero page. A write-back that fails
// keeps the pages resident and dirty, and flush() returns the error.
//
// Signal context: a store whose async_signal_safe() is true may fill in the faulting thread's signal
// handler (provider regions on the signal backend, userfaultfd self-service): it then may not allocate,
// lock or use stdio. Other stores are only ever called as ordinary code (pager and handler threads),
// and faultline refuses them for such regions. A store's functions may be called by several threads
// at once.
//
// Waiting. A fill must not wait for the faulting thread, or for any access to the region's missing
// pages: that thread sleeps until its window is in, and on the handler thread a sequential stream's
// thread sleeps until the read-ahead after its window is in too (requests with tid 0).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "faultline/context.hpp"
#include "faultline/policy.hpp"
#include "faultline/result.hpp"

namespace faultline {

// A run of pages to bring in.
struct FillRequest {
  RegionInfo region;
  std::size_t offset;    // byte offset in the region of the first page
  std::size_t length;    // bytes to fill: a run of whole pages
  Access access;         // what the faulting instruction attempted
  std::uintptr_t pc;     // the faulting instruction (0 when unknown, e.g. userfaultfd)
  long tid;              // the faulting thread; 0 when unknown, and for read-ahead that no thread is
                         // waiting for yet (RegionOptions::async_readahead): a store may answer
                         // those with an error, which fails nothing
  std::byte* dest;       // where the bytes go (see "Runs" above)
  // When >= 0, `dest` is also bytes [dest_offset, dest_offset + length) of this file (a provider
  // region's shmem cache, FillPath::shmem_cache): a store may write them there instead (pwrite, splice),
  // which spares the page faults of writing through `dest`. Either way all `length` bytes are written.
  // The file store splices from its file. Never in a signal handler.
  int dest_fd = -1;
  std::uint64_t dest_offset = 0;
};

// A fill's (or a write-back's) answer: error 0 on success, otherwise an errno value and, optionally, a
// reason with static storage duration. Both appear in the crash report.
struct FillStatus {
  int error = 0;
  const char* reason = nullptr;
};

// A fill function: a read-only store given as a function and its data.
using FillFn = FillStatus (*)(const FillRequest& req, void* data);

// A run of pages to store (write-back).
struct WriteBackRequest {
  RegionInfo region;
  std::size_t offset;       // byte offset in the region of the first page
  std::size_t length;       // bytes: whole pages
  const std::byte* src;     // the pages' contents (the region's own memory)
};

// The store interface. Thread-safety: implementations must accept concurrent calls.
class Store {
 public:
  virtual ~Store() = default;
  // Fills req.dest with req.length bytes of the run at req.offset.
  virtual FillStatus fill(const FillRequest& req) = 0;
  // Stores `n` runs as one batch. Sets *stored to the number of runs stored before the first failure
  // and returns that failure ({} when all were stored). The default refuses: EROFS.
  virtual FillStatus write_back(const WriteBackRequest* runs, std::size_t n, std::size_t* stored);
  // True when write_back() can store pages.
  virtual bool writable() const noexcept { return false; }
  // True when fill() is async-signal-safe (see above).
  virtual bool async_signal_safe() const noexcept { return false; }
  // Pages per run that the store answers in one request when a fill starts on a multiple of it and
  // stays inside it (a remote store's chunk); 0 or 1: no preference. The userfaultfd backend then ends
  // each read-ahead window at the next such boundary, so that sequential windows start on one. Read once,
  // when a region is created.
  virtual std::size_t preferred_run_pages() const noexcept { return 0; }
  // True when fill() writes the pages to FillRequest::dest_fd when one is given, without touching
  // `dest` (the file store splices). FillPath::automatic puts the regions of such a store over a shmem
  // cache; a store that writes through `dest` is faster with copies (it would fault on each fresh
  // cache page), and gets the cache only when asked for by name.
  virtual bool fills_by_fd() const noexcept { return false; }
};

// The file store: a region's pages are a range of a file, read with pread in runs as long as the fill,
// and written back with pwrite when opened writable. Pages past the end of the file read as zeros, as
// with mmap. Its fill is async-signal-safe, so it serves provider regions on the signal backend too.
class FileStore final : public Store {
 public:
  // Opens `path` (read-only unless `writable`); the region's offset 0 is the file's `offset` (a
  // multiple of the page size). Thread-safe; not async-signal-safe.
  static Result<FileStore> open(const std::string& path, std::uint64_t offset = 0, bool writable = false);
  FileStore() = default;
  FileStore(FileStore&& o) noexcept;
  FileStore& operator=(FileStore&& o) noexcept;
  FileStore(const FileStore&) = delete;
  FileStore& operator=(const FileStore&) = delete;
  ~FileStore() override;

  FillStatus fill(const FillRequest& req) override;  // async-signal-safe (raw pread)
  FillStatus write_back(const WriteBackRequest* runs, std::size_t n, std::size_t* stored) override;
  bool writable() const noexcept override { return writable_; }
  bool async_signal_safe() const noexcept override { return true; }
  bool fills_by_fd() const noexcept override { return true; }  // splice, pread for what it cannot place

  std::uint64_t size() const noexcept { return size_; }  // the file's size when opened
  int fd() const noexcept { return fd_; }

 private:
  int fd_ = -1;
  std::uint64_t offset_ = 0, size_ = 0;
  bool writable_ = false;
};

}  // namespace faultline
