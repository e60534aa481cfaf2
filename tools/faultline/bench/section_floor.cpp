// tools/faultline/bench/section_floor.cpp: this machine's floors, measured first, in the same run as the
// rows they bound (harness.hpp, "Floors"):
//   - populate+touch: the cheapest way to make N fresh pages present and touched (one
//     MADV_POPULATE_WRITE per 64 pages, then a write to each): what any first-touch mechanism pays at
//     least (on hosts that back guest pages lazily, the touch itself costs microseconds);
//   - populate+content: the same with the content-initialised rows' content written into each batch
//     (what those rows pay at least: producing the content is part of the work);
//   - both again with the pages made present (and written) by another thread while this one waits: the
//     bounds of the handler-thread rows (a handler thread is another thread; on hosts where a page
//     another CPU made costs more, no handler-thread design can reach the floor);
//   - the bare userfaultfd round trip: a thread writes to a missing page, another thread reads the fault
//     and resolves it with one UFFDIO_COPY (no table, no store, no read-ahead);
//   - the same with UFFD_FEATURE_SIGBUS: the faulting thread's own SIGBUS handler resolves it.
// Each is a row against the kernel's demand-zero fault; the sections after attach them to their rows.
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

#include "bench/sections.hpp"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace faultline::bench {

namespace {

std::size_t g_page = 4096;

double touch_all(char* p, std::size_t pages) {
  const double t0 = now_ns();
  for (std::size_t i = 0; i < pages; ++i) p[i * g_page] = 1;
  return (now_ns() - t0) / static_cast<double>(pages);
}

// A userfaultfd over a private anonymous mapping, MISSING faults, resolved one page at a time.
class BareUffd {
 public:
  BareUffd(std::size_t pages, bool sigbus) : len_(pages * g_page) {
    fd_ = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC));
    mem_ = static_cast<char*>(mmap(nullptr, len_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    src_ = static_cast<char*>(mmap(nullptr, g_page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (fd_ < 0 || mem_ == MAP_FAILED || src_ == MAP_FAILED) return;
    std::memset(src_, 7, g_page);
    uffdio_api api{UFFD_API, sigbus ? static_cast<std::uint64_t>(UFFD_FEATURE_SIGBUS) : 0, 0};
    uffdio_register reg{};
    reg.range = {reinterpret_cast<std::uint64_t>(mem_), len_};
    reg.mode = UFFDIO_REGISTER_MODE_MISSING;
    ok_ = ioctl(fd_, UFFDIO_API, &api) == 0 && ioctl(fd_, UFFDIO_REGISTER, &reg) == 0;
    if (ok_ && !sigbus) thread_ = std::thread([this] { serve(); });
  }
  ~BareUffd() {
    if (thread_.joinable()) {
      stop_ = true;
      *static_cast<volatile char*>(mem_) = 1;  // one last fault: the thread resolves it and sees stop_
      thread_.join();
    }
    if (mem_ != MAP_FAILED && mem_ != nullptr) munmap(mem_, len_);
    if (src_ != MAP_FAILED && src_ != nullptr) munmap(src_, g_page);
    if (fd_ >= 0) close(fd_);
  }
  bool ok() const { return ok_; }
  char* mem() const { return mem_; }
  std::size_t size() const { return len_; }
  // Resolves the missing page at `addr` (any thread, signal handlers included: one ioctl). EAGAIN (the
  // address space is changing) is retried; any other failure (EEXIST: a second message for a page
  // already copied) wakes the waiter explicitly, which COPY does only when it copies.
  void copy(std::uintptr_t addr) const noexcept {
    const std::uint64_t page = addr & ~(g_page - 1);
    for (;;) {
      uffdio_copy c{page, reinterpret_cast<std::uint64_t>(src_), g_page, 0, 0};
      if (ioctl(fd_, UFFDIO_COPY, &c) == 0) return;
      if (errno != EAGAIN) break;
    }
    uffdio_range r{page, g_page};
    ioctl(fd_, UFFDIO_WAKE, &r);
  }

 private:
  void serve() {
    uffd_msg msg{};
    for (;;) {
      if (read(fd_, &msg, sizeof msg) != static_cast<ssize_t>(sizeof msg)) continue;
      if (msg.event != UFFD_EVENT_PAGEFAULT) continue;
      copy(msg.arg.pagefault.address);
      // Only the destructor's own fault ends the thread (a late message of the last sample must not).
      if (stop_ && (msg.arg.pagefault.address & ~(g_page - 1)) == reinterpret_cast<std::uintptr_t>(mem_)) return;
    }
  }
  int fd_ = -1;
  char* mem_ = nullptr;
  char* src_ = nullptr;
  std::size_t len_;
  bool ok_ = false;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

const BareUffd* g_sigbus_uffd = nullptr;

void on_sigbus(int, siginfo_t* si, void*) {
  const int saved = errno;
  g_sigbus_uffd->copy(reinterpret_cast<std::uintptr_t>(si->si_addr));
  errno = saved;
}

}  // namespace

void section_floor(Bench& b) {
  if (!b.wants("floor") && !b.wants("regions") && !b.wants("userfaultfd")) return;
  g_page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  const std::size_t pages = b.options().quick ? std::min<std::size_t>(b.options().pages, 1024) : b.options().pages;
  const std::string base = "kernel demand-zero fault";
  Mapping kernel(pages * g_page, PROT_READ | PROT_WRITE);
  const Sampler kernel_fault = [&] {
    const double ns = touch_all(kernel.data(), pages);
    madvise(kernel.data(), kernel.size(), MADV_DONTNEED);
    return ns;
  };
  const std::string note = std::to_string(pages) + " pages per sample";

  Mapping fresh(pages * g_page, PROT_READ | PROT_WRITE);
  if (madvise(fresh.data(), 64 * g_page, MADV_POPULATE_WRITE) != 0) {
    b.unavailable("floor", "populate+touch: MADV_POPULATE_WRITE per 64 pages, then a write to each", base,
                  std::string("MADV_POPULATE_WRITE: ") + std::strerror(errno) + " (Linux 5.14 and later)");
  } else {
    madvise(fresh.data(), 64 * g_page, MADV_DONTNEED);
    // Makes `fresh` present 64 pages at a time, with the content-initialised rows' content written into
    // each batch when `content` is set.
    const auto populate = [&](bool content) {
      for (std::size_t i = 0; i < pages; i += 64) {
        const std::size_t n = std::min<std::size_t>(64, pages - i);
        madvise(fresh.data() + i * g_page, n * g_page, MADV_POPULATE_WRITE);
        if (!content) continue;
        FillRequest req{};
        req.offset = i * g_page;
        req.length = n * g_page;
        req.access = Access::write;
        req.dest = reinterpret_cast<std::byte*>(fresh.data() + i * g_page);
        (void)fill_pattern(req, nullptr);
      }
    };
    // The same work done by another thread while this one waits (one hand-over each way per sample,
    // futex waits), then this thread's write to each page: the least any handler-thread design pays.
    std::atomic<int> asked{0}, done{0};
    std::atomic<bool> content_asked{false};
    std::thread helper([&] {
      int seen = 0;
      for (;;) {
        asked.wait(seen);
        seen = asked.load();
        if (seen < 0) return;
        populate(content_asked.load());
        done.store(seen);
        done.notify_one();
      }
    });
    const auto sampler = [&](bool content, bool other_thread) -> Sampler {
      return [&, content, other_thread] {
        const double t0 = now_ns();
        if (other_thread) {
          content_asked.store(content);
          const int n = asked.load() + 1;
          asked.store(n);
          asked.notify_one();
          for (int d = done.load(); d != n; d = done.load()) done.wait(d);
        } else {
          populate(content);
        }
        for (std::size_t i = 0; i < pages; ++i) fresh.data()[i * g_page] = 1;
        const double ns = (now_ns() - t0) / static_cast<double>(pages);
        madvise(fresh.data(), fresh.size(), MADV_DONTNEED);
        return ns;
      };
    };
    struct Floor {
      const char* key;
      const char* name;
      bool content, other_thread;
    };
    const Floor floors[] = {
        {"populate", "populate+touch: MADV_POPULATE_WRITE per 64 pages, then a write to each", false, false},
        // With content: what a program pays at least for N fresh pages holding the content-initialised
        // rows' content (written into each batch once it is populated). Producing the content is work no
        // mechanism can skip, so those rows are held to this.
        {"populate_content",
         "populate+content: MADV_POPULATE_WRITE per 64 pages, the content written into them, then a write to each",
         true, false},
        // The bounds of the handler-thread rows (Row::bound): the same with the pages made present by
        // another thread, the one thing a handler thread cannot avoid.
        {"populate_other",
         "populate by another thread: it makes the pages present (MADV_POPULATE_WRITE per 64 pages), then this "
         "one writes to each",
         false, true},
        {"populate_content_other",
         "populate+content by another thread: it makes the pages present and writes the content, then this one "
         "writes to each",
         true, true},
    };
    for (const Floor& f : floors) {
      b.measure_floor(f.key, f.name, base, kernel_fault, sampler(f.content, f.other_thread)).note = note;
    }
    asked.store(-1);
    asked.notify_one();
    helper.join();
  }

  {
    BareUffd u(pages, false);
    if (!u.ok()) {
      b.unavailable("floor", "bare userfaultfd round trip: a thread resolves each fault with one UFFDIO_COPY", base,
                    std::string("userfaultfd: ") + std::strerror(errno));
    } else {
      b.measure_floor("uffd", "bare userfaultfd round trip: a thread resolves each fault with one UFFDIO_COPY", base,
                      kernel_fault,
                      [&] {
                        const double ns = touch_all(u.mem(), pages);
                        madvise(u.mem(), u.size(), MADV_DONTNEED);
                        return ns;
                      })
          .note = note;
    }
  }
  {
    BareUffd u(pages, true);
    if (!u.ok()) {
      b.unavailable("floor", "bare userfaultfd round trip, SIGBUS: the faulting thread's handler does UFFDIO_COPY",
                    base, "userfaultfd with UFFD_FEATURE_SIGBUS is not available here");
    } else {
      g_sigbus_uffd = &u;
      b.measure_floor("uffd_sigbus", "bare userfaultfd round trip, SIGBUS: the faulting thread's handler does UFFDIO_COPY",
                      base, kernel_fault,
                      [&] {
                        // Our own SIGBUS handler for the sample only (faultline's comes back after it).
                        struct sigaction sa{}, old{};
                        sa.sa_sigaction = on_sigbus;
                        sa.sa_flags = SA_SIGINFO;
                        sigemptyset(&sa.sa_mask);
                        sigaction(SIGBUS, &sa, &old);
                        const double ns = touch_all(u.mem(), pages);
                        sigaction(SIGBUS, &old, nullptr);
                        madvise(u.mem(), u.size(), MADV_DONTNEED);
                        return ns;
                      })
          .note = note;
      g_sigbus_uffd = nullptr;
    }
  }
}

}  // namespace faultline::bench
