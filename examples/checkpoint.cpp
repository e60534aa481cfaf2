// examples/checkpoint.cpp: an incremental checkpointer, on faultline's public API only.
//
// A computation runs in a thread of its own over a heap that is a track_dirty region (WP_ASYNC where the
// kernel has it, mprotect tracking otherwise: faultline picks). Every few milliseconds the checkpointer
// stops the computation (world::stop), asks the region which pages were written since the last
// checkpoint (collect_dirty: the same call re-arms the tracking), appends just those pages to a
// checkpoint file, and lets the computation go on (world::resume): the pause lasts as long as copying the
// pages written in one interval, not the heap. When the computation ends, a fresh process (this program
// again, with --restore FILE) replays the file into a heap of its own and prints its checksum; the
// checkpointer compares it with the live heap's.
//
//   faultline_checkpoint_demo [--restore FILE]
//
// Prints how many checkpoints it took, how many pages it saved against full copies, the longest pause,
// and "checkpoint: restored state matches" (exit 0), or what differed (exit 1).
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "faultline/faultline.hpp"

namespace {

constexpr std::size_t kPages = 512;
constexpr std::uint32_t kMagic = 0x54504b43;  // "CKPT"
const std::size_t kPage = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));

// One record of the checkpoint file: a page and its bytes.
struct RecordHead {
  std::uint32_t magic;
  std::uint32_t epoch;
  std::uint64_t page;
};

std::uint64_t checksum(const unsigned char* p, std::size_t n) {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

// The computation: a deterministic walk that reads one page and writes another, with a hot set (a few
// pages written often) and a cold tail (pages written once in a while), as real heaps are.
void compute(unsigned char* heap, std::size_t steps, std::atomic<bool>* done) {
  std::uint64_t x = 88172645463325252ull;
  auto next = [&x] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  for (std::size_t s = 0; s < steps; ++s) {
    const std::uint64_t r = next();
    const std::size_t from = r % kPages;
    const std::size_t to = (r >> 16) % 65536 == 0 ? (r >> 32) % kPages : (r >> 32) % 16;  // rarely cold
    auto* src = reinterpret_cast<std::uint64_t*>(heap + from * kPage);
    auto* dst = reinterpret_cast<std::uint64_t*>(heap + to * kPage);
    const std::size_t w = (r >> 8) % (kPage / 8);
    dst[w] = dst[w] * 31 + src[(w + 1) % (kPage / 8)] + s;
  }
  done->store(true, std::memory_order_release);
}

// A heap of kPages pages with `policy`, or nothing (and why, on stderr).
std::optional<faultline::Region> heap_region(const char* name, faultline::Policy policy) {
  faultline::RegionOptions o;
  o.name = name;
  o.policy = policy;
  auto r = faultline::reserve_region(kPages * kPage, o);
  if (!r) {
    std::fprintf(stderr, "reserve_region %s: %s\n", name, r.error().message().c_str());
    return std::nullopt;
  }
  return std::move(*r);
}

int restore(const char* path) {
  auto heap = heap_region("restored-heap", faultline::Policy::zero_fill);
  if (!heap) return 1;
  auto* base = static_cast<unsigned char*>(heap->data());
  std::FILE* f = std::fopen(path, "rb");
  if (f == nullptr) {
    std::perror("restore: fopen");
    return 1;
  }
  RecordHead h{};
  std::size_t records = 0;
  // Read through a buffer of our own, then copied: a system call that meets a page faultline has not
  // filled yet fails with EFAULT on the signal backend and without the privilege for kernel-mode
  // userfaultfd faults (README: Backends), where an ordinary store is a fault faultline serves.
  std::vector<unsigned char> page(kPage);
  while (std::fread(&h, sizeof h, 1, f) == 1) {
    if (h.magic != kMagic || h.page >= kPages || std::fread(page.data(), kPage, 1, f) != 1) {
      std::fprintf(stderr, "restore: a damaged record after %zu\n", records);
      return 1;
    }
    std::memcpy(base + h.page * kPage, page.data(), kPage);
    ++records;
  }
  std::fclose(f);
  std::printf("%llu\n", static_cast<unsigned long long>(checksum(base, kPages * kPage)));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  faultline::print_stats();  // each region's counters on stderr as it ends, and a summary at exit
  if (argc == 3 && std::strcmp(argv[1], "--restore") == 0) return restore(argv[2]);
  if (auto r = faultline::install(); !r) {
    std::fprintf(stderr, "install: %s\n", r.error().message().c_str());
    return 1;
  }
  auto heap = heap_region("heap", faultline::Policy::track_dirty);
  if (!heap) return 1;
  auto* base = static_cast<unsigned char*>(heap->data());
  std::printf("checkpoint: heap of %zu pages, dirty tracking by %s\n", kPages, heap->backend_reason());

  char path[] = "/tmp/faultline-checkpoint-XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) {
    std::perror("mkstemp");
    return 1;
  }
  std::FILE* out = fdopen(fd, "wb");

  std::atomic<bool> done{false};
  std::thread worker([&] {
    auto attached = faultline::attach_thread();  // world::stop() reaches attached threads
    if (!attached) std::_Exit(3);
    compute(base, 30'000'000, &done);
  });

  std::size_t checkpoints = 0, saved = 0;
  double longest_pause_us = 0;
  std::uint32_t epoch = 0;
  std::vector<unsigned char> copy;
  auto take = [&]() -> bool {
    const auto t0 = std::chrono::steady_clock::now();
    if (auto s = faultline::world::stop(); !s) {
      std::fprintf(stderr, "world::stop: %s\n", s.error().message().c_str());
      return false;
    }
    auto dirty = heap->collect_dirty();
    bool ok = dirty.ok();
    if (ok) {
      copy.resize(dirty->size() * kPage);
      for (std::size_t i = 0; i < dirty->size(); ++i) std::memcpy(&copy[i * kPage], base + (*dirty)[i] * kPage, kPage);
    }
    (void)faultline::world::resume();
    longest_pause_us = std::max(
        longest_pause_us, std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    if (!ok) {
      std::fprintf(stderr, "collect_dirty: %s\n", dirty.error().message().c_str());
      return false;
    }
    // Written out after the computation went on: the pause covers the copy only.
    for (std::size_t i = 0; i < dirty->size(); ++i) {
      const RecordHead h{kMagic, epoch, (*dirty)[i]};
      std::fwrite(&h, sizeof h, 1, out);
      std::fwrite(&copy[i * kPage], kPage, 1, out);
    }
    ++epoch;
    ++checkpoints;
    saved += dirty->size();
    return true;
  };
  bool ok = true;
  while (ok && !done.load(std::memory_order_acquire)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ok = take();
  }
  worker.join();
  ok = ok && take();  // what the last interval wrote
  std::fclose(out);
  if (!ok) return 1;

  const std::uint64_t live = checksum(base, kPages * kPage);
  std::printf("checkpoint: %zu checkpoints, %zu pages saved (full copies would be %zu), longest pause %.0f us\n",
              checkpoints, saved, checkpoints * kPages, longest_pause_us);
  // Restore in a fresh process: this program again.
  int pipefd[2];
  if (pipe(pipefd) != 0) return 1;
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(pipefd[1], 1);
    execl("/proc/self/exe", argv[0], "--restore", path, static_cast<char*>(nullptr));
    _exit(127);
  }
  close(pipefd[1]);
  char buf[64] = {};
  const ssize_t n = read(pipefd[0], buf, sizeof buf - 1);
  int status = 0;
  waitpid(pid, &status, 0);
  unlink(path);
  const std::uint64_t restored = n > 0 ? std::strtoull(buf, nullptr, 10) : 0;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || restored != live) {
    std::printf("checkpoint: restored state differs (live %llu, restored %llu, status %d)\n",
                static_cast<unsigned long long>(live), static_cast<unsigned long long>(restored), status);
    return 1;
  }
  if (checkpoints < 2 || saved >= checkpoints * kPages) {
    std::printf("checkpoint: not incremental (%zu checkpoints, %zu pages)\n", checkpoints, saved);
    return 1;
  }
  std::printf("checkpoint: restored state matches\n");
  return 0;
}
