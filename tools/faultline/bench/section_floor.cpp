// tools/faultline/bench/section_floor.cpp: this machine's floors, measured first, in the same run as the
// rows they bound (harness.hpp, "Floors"):
//   - populate+touch: the cheapest way to make N fresh pages present and touched (one
//     MADV_POPULATE_WRITE per 64 pages, then a write to each): what any first-touch mechanism pays at
//     least (on hosts that back guest pages lazily, the touch itself costs microseconds);
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
    b.measure_floor("populate", "populate+touch: MADV_POPULATE_WRITE per 64 pages, then a write to each", base,
                    kernel_fault,
                    [&] {
                      const double t0 = now_ns();
                      for (std::size_t i = 0; i < pages; i += 64) {
                        madvise(fresh.data() + i * g_page, std::min<std::size_t>(64, pages - i) * g_page,
                                MADV_POPULATE_WRITE);
                      }
                      for (std::size_t i = 0; i < pages; ++i) fresh.data()[i * g_page] = 1;
                      const double ns = (now_ns() - t0) / static_cast<double>(pages);
                      madvise(fresh.data(), fresh.size(), MADV_DONTNEED);
                      return ns;
                    })
        .note = note;
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
