// examples/snapshot.cpp: lazy snapshot restore (as Firecracker and CRIU's lazy pages do it), on
// faultline's public API only.
//
// A "process" heap of 2048 pages (8 MiB) is filled with a deterministic mix of zero, text-like, record
// and random pages and saved as a zstd-compressed snapshot file: 16-page chunks (64 KiB), each its own
// zstd frame, behind an index of (offset, size) per chunk, so that one chunk can be read and
// decompressed alone. The snapshot is then restored lazily into a new region that has nothing in it:
// the first touch of a page makes faultline ask the region's store for it, the store reads that page's
// chunk from the file and decompresses it, and only then does the page appear. The program touches a
// quarter of the pages (five "arenas", in random order), checks every byte it reads against the
// original, writes some, and reports how much of the snapshot was never loaded.
//
// Why a pager and not a provider. A provider's fill runs in the faulting thread's SIGSEGV handler on
// the signal backend, so it must be async-signal-safe. With the zstd installed here (1.5.4)
// ZSTD_decompressDCtx allocates nothing once ZSTD_createDCtx has made the context (checked with a
// counting ZSTD_customMem), but zstd's manual promises neither that nor async-signal-safety, a context
// serves one thread at a time (so concurrent faults would need a lock-free pool of them), and the
// store also reads the file, keeps decompressed chunks and takes write-backs. A pager (Policy::pager)
// runs the same fill on a Pager thread as ordinary code, on either backend, while the faulting thread
// waits: it may lock, allocate and pread. The store still creates its one decompression context up front.
//
// Fault-around. fault_around is one chunk: on the signal backend a fault fills a run of up to 16 pages
// from the faulting page on; on userfaultfd the read-ahead window starts there and halves on random
// faults (doubling on sequential ones up to readahead_max, also one chunk). Runs start at the faulting
// page, not at a chunk boundary, so the store keeps a decompressed chunk until every page of it has been
// handed out (or the store goes): each chunk is decompressed once however its pages are asked for.
//
// Writes since the restore: an incremental snapshot. On userfaultfd the region has write_back = true:
// filled pages are installed write-protected, the first write to each is recorded, and Region::flush()
// hands exactly the written pages to the store's write_back(). The signal backend offers no write
// tracking for a filled region (write-back needs userfaultfd; track_dirty is a policy of its own, not an
// option of a pager region), so there the program finds the pages that differ from the snapshot, among
// the pages it loaded (a page never filled cannot have been written). Both ways must find exactly the
// pages the program wrote. Those pages, one zstd frame, are the increment. Then the rest of the live heap
// is read (loading the remaining chunks lazily, checked too), and a fresh process (this program again,
// with --restore BASE INCREMENT) restores base + increment lazily in the same way and streams its whole
// heap back; every byte must equal the live heap.
//
//   faultline_snapshot_demo [--backend signals|userfaultfd|auto]        (auto: faultline decides)
//   faultline_snapshot_demo --restore BASE INCREMENT [--backend ...]    (the fresh process)
//
// Prints the snapshot's size against the raw heap, the backend each region got and why, chunks loaded
// against the total, pages never loaded, the increment's pages, and "snapshot: restored state matches"
// (exit 0), or what differed (exit 1). Build: link libzstd (-lzstd) as well as faultline.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "faultline/faultline.hpp"

namespace {

constexpr std::size_t kPages = 2048;
constexpr std::size_t kChunkPages = 16;
constexpr std::size_t kChunks = kPages / kChunkPages;
constexpr int kLevel = 3;                          // zstd's default level
constexpr std::uint32_t kBaseMagic = 0x4e534c46;  // "FLSN"
constexpr std::uint32_t kIncMagic = 0x4e494c46;   // "FLIN"
constexpr std::uint64_t kSeed = 0x5eed5eed2024ull;
const std::size_t kPage = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
const std::size_t kChunkBytes = kChunkPages * kPage;

// The base snapshot: this head, the index (one entry per chunk), then the chunks' zstd frames.
struct BaseHead {
  std::uint32_t magic;
  std::uint32_t page_size;
  std::uint64_t pages;
  std::uint64_t chunk_pages;
};
struct ChunkEntry {
  std::uint64_t offset;  // of the chunk's frame in the file
  std::uint64_t size;    // of the frame
};
// The increment: this head, `pages` page numbers (ascending), then one zstd frame of those pages.
struct IncHead {
  std::uint32_t magic;
  std::uint32_t page_size;
  std::uint64_t pages;
  std::uint64_t frame_size;
};

// ---- small helpers ---------------------------------------------------------------------------------

std::uint64_t mix(std::uint64_t x) {  // splitmix64's finaliser: a well-spread hash of x
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

struct Rng {  // xorshift64*, seeded through mix(): deterministic and cheap
  std::uint64_t s;
  explicit Rng(std::uint64_t seed) : s(mix(seed) | 1) {}
  std::uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 2685821657736338717ull;
  }
  std::size_t below(std::size_t n) { return static_cast<std::size_t>(next() % n); }
};

template <class T>
void shuffle(std::vector<T>& v, Rng& rng) {
  for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
}

bool write_all(int fd, const void* p, std::size_t n) {
  const auto* b = static_cast<const unsigned char*>(p);
  while (n > 0) {
    const ssize_t w = write(fd, b, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    b += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool pread_all(int fd, void* p, std::size_t n, std::uint64_t off) {
  auto* b = static_cast<unsigned char*>(p);
  while (n > 0) {
    const ssize_t r = pread(fd, b, n, static_cast<off_t>(off));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    b += r;
    n -= static_cast<std::size_t>(r);
    off += static_cast<std::uint64_t>(r);
  }
  return true;
}

// A temporary file that is removed when the program is done with it.
struct TempFile {
  char path[64] = "/tmp/faultline-snapshot-XXXXXX";
  int fd = -1;
  TempFile() { fd = mkstemp(path); }
  ~TempFile() {
    if (fd >= 0) {
      close(fd);
      unlink(path);
    }
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
};

double mib(std::size_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

// ---- the heap at snapshot time ---------------------------------------------------------------------

enum class Kind { zero, text, records, random };

// Kinds come in groups of 4 pages (a chunk holds 4 groups), so chunks compress differently: a chunk of
// zeros to a few bytes, one of random pages not at all.
Kind kind_of(std::size_t page) {
  switch (mix(kSeed ^ (page / 4)) % 8) {
    case 0:
    case 1: return Kind::zero;
    case 2:
    case 3:
    case 4: return Kind::text;
    case 5: return Kind::random;
    default: return Kind::records;
  }
}

void make_page(std::size_t page, unsigned char* p) {
  static const char* const kWords[] = {"page",  "fault",  "region", "snapshot", "restore", "chunk", "pager",
                                       "store", "the",    "of",     "a",        "lazy",    "heap",  "zstd",
                                       "index", "kernel", "signal", "thread",   "write",   "read",  "dirty"};
  Rng rng(kSeed + page);
  switch (kind_of(page)) {
    case Kind::zero: std::memset(p, 0, kPage); break;
    case Kind::text: {  // words, spaces and line breaks: compresses about 3x
      std::size_t at = 0, words = 0;
      while (at < kPage) {
        const char* w = kWords[rng.below(sizeof kWords / sizeof kWords[0])];
        for (const char* c = w; *c != 0 && at < kPage; ++c) p[at++] = static_cast<unsigned char>(*c);
        if (at < kPage) p[at++] = ++words % 12 == 0 ? '\n' : ' ';
      }
      break;
    }
    case Kind::records: {  // 16-byte records: an ascending key, a small count, one flag bit
      for (std::size_t at = 0; at + 16 <= kPage; at += 16) {
        const std::uint64_t key = page * 1000 + at / 16 * 3;
        const auto count = static_cast<std::uint32_t>(rng.below(100));
        const std::uint32_t flags = 1u << rng.below(4);
        std::memcpy(p + at, &key, 8);
        std::memcpy(p + at + 8, &count, 4);
        std::memcpy(p + at + 12, &flags, 4);
      }
      break;
    }
    case Kind::random:  // incompressible
      for (std::size_t at = 0; at < kPage; at += 8) {
        const std::uint64_t v = rng.next();
        std::memcpy(p + at, &v, 8);
      }
      break;
  }
}

// Writes the base snapshot of `heap` to `fd`; returns the file's size (0 on failure).
std::size_t save_base(const unsigned char* heap, int fd) {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  std::vector<unsigned char> frame(ZSTD_compressBound(kChunkBytes));
  std::vector<ChunkEntry> index(kChunks);
  const BaseHead head{kBaseMagic, static_cast<std::uint32_t>(kPage), kPages, kChunkPages};
  std::uint64_t at = sizeof head + kChunks * sizeof(ChunkEntry);
  bool ok = cctx != nullptr && lseek(fd, static_cast<off_t>(at), SEEK_SET) >= 0;
  for (std::size_t c = 0; ok && c < kChunks; ++c) {
    const std::size_t n =
        ZSTD_compressCCtx(cctx, frame.data(), frame.size(), heap + c * kChunkBytes, kChunkBytes, kLevel);
    if (ZSTD_isError(n)) {
      std::fprintf(stderr, "zstd: %s\n", ZSTD_getErrorName(n));
      ok = false;
      break;
    }
    index[c] = ChunkEntry{at, n};
    ok = write_all(fd, frame.data(), n);
    at += n;
  }
  ZSTD_freeCCtx(cctx);
  ok = ok && lseek(fd, 0, SEEK_SET) == 0 && write_all(fd, &head, sizeof head) &&
       write_all(fd, index.data(), index.size() * sizeof(ChunkEntry));
  return ok ? static_cast<std::size_t>(at) : 0;
}

// ---- the store: pages from the snapshot file, on demand ---------------------------------------------

// Serves a pager region from a base snapshot (and, once given one, an increment, or what the region
// writes back). Its fill() runs on the Pager's thread as ordinary code; every call may come from a
// different thread, so one mutex guards its state.
class SnapshotStore final : public faultline::Store {
 public:
  SnapshotStore() = default;
  SnapshotStore(const SnapshotStore&) = delete;
  SnapshotStore& operator=(const SnapshotStore&) = delete;
  ~SnapshotStore() override {
    ZSTD_freeDCtx(dctx_);
    if (fd_ >= 0) close(fd_);
  }

  // Reads the head and the index; the chunks stay in the file until a fault needs one.
  bool open(const char* path) {
    fd_ = ::open(path, O_RDONLY | O_CLOEXEC);
    BaseHead head{};
    if (fd_ < 0 || !pread_all(fd_, &head, sizeof head, 0)) return complain(path, "cannot be read");
    if (head.magic != kBaseMagic || head.page_size != kPage || head.pages != kPages ||
        head.chunk_pages != kChunkPages) {
      return complain(path, "is not a snapshot of this heap");
    }
    index_.resize(kChunks);
    if (!pread_all(fd_, index_.data(), kChunks * sizeof(ChunkEntry), sizeof head)) {
      return complain(path, "has no index");
    }
    std::uint64_t largest = 0;
    for (const ChunkEntry& e : index_) largest = std::max(largest, e.size);
    if (largest > ZSTD_compressBound(kChunkBytes)) return complain(path, "has a damaged index");
    // Everything a fill needs is made now: the decompression context and the buffer for one frame.
    dctx_ = ZSTD_createDCtx();
    if (dctx_ == nullptr) return complain(path, "needs a zstd context, and none could be made");
    frame_.resize(largest);
    cache_.resize(kChunks);
    left_.assign(kChunks, kChunkPages);
    loaded_.assign(kChunks, false);
    filled_.assign(kPages, false);
    newer_.resize(kPages);
    return true;
  }

  // The fresh process: the increment's pages replace the base's.
  bool apply_increment(const char* path) {
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    IncHead head{};
    bool ok = fd >= 0 && pread_all(fd, &head, sizeof head, 0) && head.magic == kIncMagic && head.page_size == kPage &&
              head.pages <= kPages && head.frame_size <= ZSTD_compressBound(head.pages * kPage);
    std::vector<std::uint64_t> pages(ok ? head.pages : 0);
    std::vector<unsigned char> frame(ok ? head.frame_size : 0), bytes(pages.size() * kPage);
    ok = ok && pread_all(fd, pages.data(), pages.size() * sizeof(std::uint64_t), sizeof head) &&
         pread_all(fd, frame.data(), frame.size(), sizeof head + pages.size() * sizeof(std::uint64_t));
    if (fd >= 0) close(fd);
    ok = ok && ZSTD_decompress(bytes.data(), bytes.size(), frame.data(), frame.size()) == bytes.size();
    for (std::size_t i = 0; ok && i < pages.size(); ++i) {
      ok = pages[i] < kPages && (i == 0 || pages[i] > pages[i - 1]);
      if (ok) keep_newer(pages[i], bytes.data() + i * kPage);
    }
    return ok || complain(path, "is not an increment of this heap");
  }

  // Store::fill: req.length bytes of whole pages from req.offset, into req.dest.
  faultline::FillStatus fill(const faultline::FillRequest& req) override {
    std::lock_guard lock(mu_);
    const std::size_t first = req.offset / kPage;
    for (std::size_t i = 0; i < req.length / kPage; ++i) {
      const std::size_t page = first + i, c = page / kChunkPages;
      auto* dest = reinterpret_cast<unsigned char*>(req.dest) + i * kPage;
      if (newer_[page]) {
        std::memcpy(dest, newer_[page].get(), kPage);
      } else {
        const unsigned char* chunk = chunk_locked(c);
        if (chunk == nullptr) return {EIO, "a chunk of the snapshot file could not be read or decompressed"};
        std::memcpy(dest, chunk + (page % kChunkPages) * kPage, kPage);
      }
      if (!filled_[page]) {  // handed out: once the chunk's last page is, its copy goes
        filled_[page] = true;
        ++pages_filled_;
        if (--left_[c] == 0) cache_[c].reset();
      }
    }
    return {};
  }

  // Store::write_back (Region::flush() on a region with write_back): the written pages are kept, so a
  // later fill of them (after an eviction) gives what was written, not the base snapshot's bytes.
  faultline::FillStatus write_back(const faultline::WriteBackRequest* runs, std::size_t n,
                                   std::size_t* stored) override {
    std::lock_guard lock(mu_);
    for (std::size_t r = 0; r < n; ++r) {
      const auto* src = reinterpret_cast<const unsigned char*>(runs[r].src);
      for (std::size_t i = 0; i < runs[r].length / kPage; ++i) keep_newer(runs[r].offset / kPage + i, src + i * kPage);
      written_back_ += runs[r].length / kPage;
    }
    *stored = n;
    return {};
  }
  bool writable() const noexcept override { return true; }
  bool async_signal_safe() const noexcept override { return false; }  // a pager's store: ordinary code

  // The snapshot's bytes of chunk c, into out (not counted as a load: the program's own comparison).
  bool base_chunk(std::size_t c, unsigned char* out) {
    std::lock_guard lock(mu_);
    if (cache_[c]) {
      std::memcpy(out, cache_[c].get(), kChunkBytes);
      return true;
    }
    return decompress_locked(c, out);
  }

  struct Stats {
    std::size_t chunks_loaded, decompressions, pages_filled, written_back;
  };
  Stats stats() {
    std::lock_guard lock(mu_);
    return {chunks_loaded_, decompressions_, pages_filled_, written_back_};
  }
  bool filled(std::size_t page) {
    std::lock_guard lock(mu_);
    return filled_[page];
  }
  std::vector<std::size_t> written_pages() {  // what write_back() received, ascending
    std::lock_guard lock(mu_);
    std::vector<std::size_t> v;
    for (std::size_t p = 0; p < kPages; ++p) {
      if (newer_[p]) v.push_back(p);
    }
    return v;
  }

 private:
  bool complain(const char* path, const char* what) {
    std::fprintf(stderr, "snapshot: %s %s\n", path, what);
    return false;
  }

  void keep_newer(std::size_t page, const unsigned char* bytes) {
    if (!newer_[page]) newer_[page] = std::make_unique_for_overwrite<unsigned char[]>(kPage);
    std::memcpy(newer_[page].get(), bytes, kPage);
  }

  // Reads chunk c's frame from the file and decompresses it into `out` with the context made in open().
  bool decompress_locked(std::size_t c, unsigned char* out) {
    const ChunkEntry& e = index_[c];
    if (!pread_all(fd_, frame_.data(), e.size, e.offset)) return false;
    ++decompressions_;
    return ZSTD_decompressDCtx(dctx_, out, kChunkBytes, frame_.data(), e.size) == kChunkBytes;
  }

  // Chunk c, decompressed: from the cache, or from the file (then cached until its last page goes).
  const unsigned char* chunk_locked(std::size_t c) {
    if (cache_[c]) return cache_[c].get();
    auto bytes = std::make_unique_for_overwrite<unsigned char[]>(kChunkBytes);
    if (!decompress_locked(c, bytes.get())) return nullptr;
    if (!loaded_[c]) {
      loaded_[c] = true;
      ++chunks_loaded_;
    }
    cache_[c] = std::move(bytes);
    return cache_[c].get();
  }

  std::mutex mu_;
  int fd_ = -1;
  ZSTD_DCtx* dctx_ = nullptr;
  std::vector<ChunkEntry> index_;
  std::vector<unsigned char> frame_;                        // one compressed chunk, read from the file
  std::vector<std::unique_ptr<unsigned char[]>> cache_;     // decompressed chunks with pages still to go
  std::vector<std::size_t> left_;                           // per chunk: pages not handed out yet
  std::vector<bool> loaded_, filled_;                       // per chunk, per page
  std::vector<std::unique_ptr<unsigned char[]>> newer_;     // per page: written back, or the increment's
  std::size_t chunks_loaded_ = 0, decompressions_ = 0, pages_filled_ = 0, written_back_ = 0;
};

// ---- the restored region ---------------------------------------------------------------------------

struct Restored {
  faultline::Pager pager;
  faultline::Region region;
  bool tracks_writes = false;  // write_back: flush() finds the written pages
};

// A pager region over `store`, on the backend asked for if this kernel offers it; a fallback is told to
// `log` (nullptr: not told).
std::optional<Restored> restore_region(const char* name, SnapshotStore& store, faultline::Backend wanted,
                                       std::FILE* log) {
  auto pager = faultline::Pager::start({.name = "snap-pager", .threads = 1});
  if (!pager) {
    std::fprintf(stderr, "Pager::start: %s\n", pager.error().message().c_str());
    return std::nullopt;
  }
  faultline::RegionOptions o;
  o.name = name;
  o.policy = faultline::Policy::pager;
  o.store = &store;
  o.pager = *pager;
  o.fault_around = kChunkPages;  // a fault fills up to a chunk's worth of pages
  o.readahead_max = kChunkPages;
  o.backend = wanted;
  // Which backend would these options get? explain_backend() answers without reserving anything.
  auto choice = faultline::explain_backend(o);
  if (!choice && wanted == faultline::Backend::userfaultfd) {
    if (log != nullptr) {
      std::fprintf(log, "snapshot: userfaultfd is not available here (%s); falling back to Backend::automatic\n",
                   choice.error().message().c_str());
    }
    o.backend = faultline::Backend::automatic;
    choice = faultline::explain_backend(o);
  }
  if (!choice) {
    std::fprintf(stderr, "explain_backend: %s\n", choice.error().message().c_str());
    return std::nullopt;
  }
  // Write tracking for a filled region is write-back, which needs userfaultfd's handler thread.
  o.write_back = choice->backend == faultline::Backend::userfaultfd;
  auto region = faultline::reserve_region(kPages * kPage, o);
  if (!region) {
    std::fprintf(stderr, "reserve_region %s: %s\n", name, region.error().message().c_str());
    return std::nullopt;
  }
  return Restored{*pager, std::move(*region), o.write_back};
}

bool parse_backend(const char* s, faultline::Backend* b) {
  if (std::strcmp(s, "signals") == 0) *b = faultline::Backend::signals;
  else if (std::strcmp(s, "userfaultfd") == 0) *b = faultline::Backend::userfaultfd;
  else if (std::strcmp(s, "auto") == 0) *b = faultline::Backend::automatic;
  else return false;
  return true;
}

// ---- the fresh process -----------------------------------------------------------------------------

// What the fresh process sends: this head, the heap's bytes, then how many chunks it loaded.
struct ChildHead {
  char backend[16];  // the backend its region got
};

// Restores base + increment lazily and streams the whole heap to stdout. stdout is the data: messages
// go to stderr.
int restore_child(const char* base, const char* increment, faultline::Backend wanted) {
  SnapshotStore store;
  if (!store.open(base) || !store.apply_increment(increment)) return 1;
  auto restored = restore_region("restored-heap", store, wanted, nullptr);  // the parent told the fallback
  if (!restored) return 1;
  const auto* heap = static_cast<const unsigned char*>(restored->region.data());
  // Copied through a buffer of our own: a system call (write) that meets a page faultline has not filled
  // fails with EFAULT on the signal backend, where an ordinary load is a fault faultline serves.
  std::vector<unsigned char> buf(kChunkBytes);
  ChildHead head{};
  std::snprintf(head.backend, sizeof head.backend, "%s", faultline::backend_name(restored->region.backend()));
  bool ok = write_all(1, &head, sizeof head);
  for (std::size_t c = 0; ok && c < kChunks; ++c) {
    std::memcpy(buf.data(), heap + c * kChunkBytes, kChunkBytes);
    ok = write_all(1, buf.data(), buf.size());
  }
  const std::uint64_t loaded = store.stats().chunks_loaded;
  return ok && write_all(1, &loaded, sizeof loaded) ? 0 : 1;
}

// Runs this program with --restore and returns what it sent: the head, then the heap; empty on failure.
std::vector<unsigned char> run_child(const char* argv0, const char* base, const char* increment, const char* backend,
                                     ChildHead* head, std::uint64_t* child_loaded) {
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) return {};
  std::fflush(stdout);  // nothing buffered may be written twice
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(pipefd[1], 1);  // dup2 clears O_CLOEXEC on the copy
    execl("/proc/self/exe", argv0, "--restore", base, increment, "--backend", backend, static_cast<char*>(nullptr));
    _exit(127);
  }
  close(pipefd[1]);
  std::vector<unsigned char> got(sizeof(ChildHead) + kPages * kPage + sizeof(std::uint64_t));
  std::size_t have = 0;
  for (;;) {
    const ssize_t r = read(pipefd[0], got.data() + have, got.size() - have);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    have += static_cast<std::size_t>(r);
    if (have == got.size()) break;
  }
  close(pipefd[0]);
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
      have != got.size()) {
    std::printf("snapshot: the fresh process failed (status %d, %zu of %zu bytes)\n", status, have, got.size());
    return {};
  }
  std::memcpy(head, got.data(), sizeof *head);
  head->backend[sizeof head->backend - 1] = 0;
  std::memcpy(child_loaded, got.data() + got.size() - sizeof *child_loaded, sizeof *child_loaded);
  return {got.begin() + sizeof(ChildHead), got.end() - sizeof(std::uint64_t)};
}

// The pages where a and b differ, at most `limit` of them named in `text`; returns how many differ.
std::size_t differing_pages(const unsigned char* a, const unsigned char* b, std::string* text, std::size_t limit = 5) {
  std::size_t n = 0;
  for (std::size_t p = 0; p < kPages; ++p) {
    if (std::memcmp(a + p * kPage, b + p * kPage, kPage) == 0) continue;
    if (n++ < limit) {
      std::size_t at = 0;
      while (a[p * kPage + at] == b[p * kPage + at]) ++at;
      *text += " page " + std::to_string(p) + " (first at byte " + std::to_string(at) + ")";
    }
  }
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  faultline::print_stats();  // each region's counters on stderr as it ends, and a summary at exit
  faultline::Backend wanted = faultline::Backend::automatic;
  const char* backend_arg = "auto";
  const char* restore_base = nullptr;
  const char* restore_inc = nullptr;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--backend") == 0 && i + 1 < argc && parse_backend(argv[i + 1], &wanted)) {
      backend_arg = argv[++i];
    } else if (std::strcmp(argv[i], "--restore") == 0 && i + 2 < argc) {
      restore_base = argv[++i];
      restore_inc = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--backend signals|userfaultfd|auto] [--restore BASE INCREMENT]\n", argv[0]);
      return 2;
    }
  }
  if (restore_base != nullptr) return restore_child(restore_base, restore_inc, wanted);
  if (auto r = faultline::install(); !r) {
    std::fprintf(stderr, "install: %s\n", r.error().message().c_str());
    return 1;
  }

  // 1. The heap, and its snapshot.
  std::vector<unsigned char> original(kPages * kPage);
  std::size_t kinds[4] = {};
  for (std::size_t p = 0; p < kPages; ++p) {
    make_page(p, original.data() + p * kPage);
    ++kinds[static_cast<int>(kind_of(p))];
  }
  TempFile base, increment;
  if (base.fd < 0 || increment.fd < 0) {
    std::perror("mkstemp");
    return 1;
  }
  const std::size_t base_size = save_base(original.data(), base.fd);
  if (base_size == 0) {
    std::fprintf(stderr, "snapshot: writing %s failed\n", base.path);
    return 1;
  }
  std::printf("snapshot: heap of %zu pages (%.0f MiB: %zu zero, %zu text, %zu record, %zu random pages), "
              "saved in %zu chunks of %zu pages: %.2f MiB, %.1fx smaller\n",
              kPages, mib(kPages * kPage), kinds[0], kinds[1], kinds[2], kinds[3], kChunks, kChunkPages,
              mib(base_size), static_cast<double>(kPages * kPage) / static_cast<double>(base_size));

  // 2. The lazy restore: a region with nothing in it yet.
  SnapshotStore store;
  if (!store.open(base.path)) return 1;
  auto restored = restore_region("restored-heap", store, wanted, stdout);
  if (!restored) return 1;
  auto* heap = static_cast<unsigned char*>(restored->region.data());
  std::printf("snapshot: restored heap served by %s; reason: \"%s\"\n",
              faultline::backend_name(restored->region.backend()), restored->region.backend_reason());

  // 3. The restored program runs: five arenas of 8 chunks; 13 pages of every chunk in them are read (a
  //    quarter of them then written too) and one more page is written without being read first; all
  //    in random order. `expected` is what the heap must hold afterwards.
  std::vector<unsigned char> expected = original;
  Rng rng(kSeed);
  enum Op { read_only, read_write, write_only };
  std::vector<std::pair<std::size_t, Op>> touches;
  constexpr std::size_t kArenas = 5, kArenaChunks = 8, kSlot = kChunks / kArenas;  // one arena per slot
  for (std::size_t a = 0; a < kArenas; ++a) {
    const std::size_t first = a * kSlot + rng.below(kSlot - kArenaChunks);
    for (std::size_t c = first; c < first + kArenaChunks; ++c) {
      std::vector<std::size_t> pages(kChunkPages);
      for (std::size_t i = 0; i < kChunkPages; ++i) pages[i] = c * kChunkPages + i;
      shuffle(pages, rng);
      for (std::size_t i = 0; i < 13; ++i) touches.emplace_back(pages[i], i % 4 == 0 ? read_write : read_only);
      touches.emplace_back(pages[13], write_only);
    }
  }
  shuffle(touches, rng);
  std::vector<std::size_t> written;
  std::size_t reads = 0, bad_reads = 0, first_bad = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (const auto& [page, op] : touches) {
    unsigned char* live = heap + page * kPage;
    unsigned char* want = expected.data() + page * kPage;
    if (op != write_only) {
      ++reads;
      if (std::memcmp(live, want, kPage) != 0 && bad_reads++ == 0) first_bad = page;
    }
    if (op != read_only) {  // 64 bytes, each different from before: a plain store (a write fault first)
      unsigned char stamp[64];
      const std::size_t at = mix(page) % (kPage - sizeof stamp);
      for (std::size_t i = 0; i < sizeof stamp; ++i) stamp[i] = static_cast<unsigned char>(want[at + i] ^ 0xa5);
      std::memcpy(live + at, stamp, sizeof stamp);
      std::memcpy(want + at, stamp, sizeof stamp);
      written.push_back(page);
    }
  }
  const double touch_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::sort(written.begin(), written.end());
  if (bad_reads != 0) {
    std::printf("snapshot: %zu of %zu pages read differed from the original, the first page %zu\n", bad_reads, reads,
                first_bad);
    return 1;
  }
  const SnapshotStore::Stats st = store.stats();
  std::size_t chunks_untouched = 0;  // chunks none of whose pages was filled
  for (std::size_t c = 0; c < kChunks; ++c) {
    bool any = false;
    for (std::size_t i = 0; i < kChunkPages && !any; ++i) any = store.filled(c * kChunkPages + i);
    chunks_untouched += any ? 0 : 1;
  }
  std::printf("snapshot: touched %zu pages (%zu read, every byte equal to the original; %zu written) in %.1f ms, "
              "%llu pager requests\n",
              touches.size(), reads, written.size(), touch_ms,
              static_cast<unsigned long long>(restored->pager.stats().requests));
  std::printf("snapshot: chunks loaded %zu/%zu (%zu decompressions), pages filled %zu/%zu: %zu pages and %zu chunks "
              "never loaded\n",
              st.chunks_loaded, kChunks, st.decompressions, st.pages_filled, kPages, kPages - st.pages_filled,
              chunks_untouched);
  if (st.decompressions != st.chunks_loaded || chunks_untouched != kChunks - st.chunks_loaded) {
    std::printf("snapshot: a chunk was decompressed more than once, or loaded without a page filled\n");
    return 1;
  }

  // 4. The pages written since the restore: the increment.
  std::vector<std::size_t> found;
  const char* how;
  if (restored->tracks_writes) {
    auto flushed = restored->region.flush();  // write_back() gets every page written since it was filled
    if (!flushed) {
      std::printf("snapshot: flush: %s\n", flushed.error().message().c_str());
      return 1;
    }
    found = store.written_pages();
    how = "write-back tracking (Region::flush)";
  } else {
    // Signal backend: compare the loaded pages with the snapshot (never-filled pages were not written).
    std::vector<unsigned char> chunk(kChunkBytes);
    for (std::size_t c = 0; c < kChunks; ++c) {
      bool have_chunk = false;
      for (std::size_t i = 0; i < kChunkPages; ++i) {
        const std::size_t page = c * kChunkPages + i;
        if (!store.filled(page)) continue;
        if (!have_chunk && !(have_chunk = store.base_chunk(c, chunk.data()))) {
          std::printf("snapshot: chunk %zu of the snapshot could not be read\n", c);
          return 1;
        }
        if (std::memcmp(heap + page * kPage, chunk.data() + i * kPage, kPage) != 0) found.push_back(page);
      }
    }
    how = "comparing the loaded pages with the snapshot (signals: no write-back)";
  }
  if (found != written) {
    std::size_t missed = 0, extra = 0;
    for (std::size_t p : written) missed += std::binary_search(found.begin(), found.end(), p) ? 0 : 1;
    for (std::size_t p : found) extra += std::binary_search(written.begin(), written.end(), p) ? 0 : 1;
    std::printf("snapshot: the program wrote %zu pages, %s found %zu: %zu missed, %zu not written\n", written.size(),
                how, found.size(), missed, extra);
    return 1;
  }
  std::vector<std::uint64_t> inc_pages(found.begin(), found.end());
  std::vector<unsigned char> inc_bytes(found.size() * kPage), inc_frame(ZSTD_compressBound(found.size() * kPage));
  for (std::size_t i = 0; i < found.size(); ++i) std::memcpy(&inc_bytes[i * kPage], heap + found[i] * kPage, kPage);
  const std::size_t frame_size =
      ZSTD_compress(inc_frame.data(), inc_frame.size(), inc_bytes.data(), inc_bytes.size(), kLevel);
  const IncHead inc_head{kIncMagic, static_cast<std::uint32_t>(kPage), inc_pages.size(), frame_size};
  if (ZSTD_isError(frame_size) || !write_all(increment.fd, &inc_head, sizeof inc_head) ||
      !write_all(increment.fd, inc_pages.data(), inc_pages.size() * sizeof(std::uint64_t)) ||
      !write_all(increment.fd, inc_frame.data(), frame_size)) {
    std::fprintf(stderr, "snapshot: writing %s failed\n", increment.path);
    return 1;
  }
  const std::size_t inc_size = sizeof inc_head + inc_pages.size() * sizeof(std::uint64_t) + frame_size;
  std::printf("snapshot: increment of %zu pages written since the restore, found by %s: %.1f KiB (%zu KiB raw)\n",
              found.size(), how, static_cast<double>(inc_size) / 1024.0, found.size() * kPage / 1024);

  // 5. The rest of the live heap, loaded lazily now, must hold what the program left there.
  std::string where;
  if (const std::size_t n = differing_pages(heap, expected.data(), &where); n != 0) {
    std::printf("snapshot: %zu pages of the live heap differ from what the program wrote:%s\n", n, where.c_str());
    return 1;
  }

  // 6. A fresh process restores base + increment and sends its heap back: it must equal the live heap.
  ChildHead child{};
  std::uint64_t child_loaded = 0;
  const std::vector<unsigned char> copy =
      run_child(argv[0], base.path, increment.path, backend_arg, &child, &child_loaded);
  if (copy.empty()) return 1;
  if (const std::size_t n = differing_pages(copy.data(), heap, &where); n != 0) {
    std::printf("snapshot: %zu pages restored from base + increment differ from the live heap:%s\n", n, where.c_str());
    return 1;
  }
  std::printf("snapshot: a fresh process (%s) restored base + increment lazily (%llu chunks loaded): %zu pages equal "
              "to the live heap\n",
              child.backend, static_cast<unsigned long long>(child_loaded), kPages);
  std::printf("snapshot: restored state matches\n");
  return 0;
}
