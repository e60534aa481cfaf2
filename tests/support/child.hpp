// tests/support/child.hpp: running a test body that may kill its process in a forked child.
//
// run_child() forks; the child runs `body` with stdout and stderr sent to a pipe, under an alarm so that
// a hang ends as SIGALRM instead of blocking the suite, and exits 0 if `body` returns. The parent
// collects everything the child wrote and how it ended; the child runs in a process group of its own,
// killed when it ends (so a process it forked cannot outlive it and hold the test up). Shared<T> is memory both sides see (MAP_SHARED),
// for what a child's handler observed.
#pragma once

#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <new>
#include <ostream>
#include <string>

namespace faultline::test {

struct ChildResult {
  int status = 0;
  std::string output;
  bool exited() const { return WIFEXITED(status); }
  int exit_code() const { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }
  bool signaled() const { return WIFSIGNALED(status); }
  int signal() const { return WIFSIGNALED(status) ? WTERMSIG(status) : 0; }
  std::string describe() const {
    std::string s = exited() ? "exited " + std::to_string(exit_code())
                             : signaled() ? std::string("killed by ") + sigabbrev_np(signal()) : "?";
    return s + "; output:\n" + output;
  }
};

inline ChildResult run_child(const std::function<void()>& body, unsigned timeout_s = 60) {
  int fds[2];
  if (pipe(fds) != 0) std::abort();
  pid_t pid = fork();
  if (pid < 0) std::abort();
  if (pid == 0) {
    setpgid(0, 0);  // a group of its own: whatever it forks ends with it (below)
    close(fds[0]);
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    close(fds[1]);
    alarm(timeout_s);
    body();
    std::fflush(nullptr);
    _exit(0);
  }
  setpgid(pid, pid);
  close(fds[1]);
  ChildResult r;
  char buf[4096];
  bool ended = false;
  for (;;) {
    // The child's own processes (a pager it forked, stopped or not) may hold the pipe open after it
    // ended: once it has, they are killed, and the pipe is read to its end.
    if (!ended) {
      pid_t w;
      while ((w = waitpid(pid, &r.status, WNOHANG)) < 0 && errno == EINTR) {
      }
      if (w == pid) {
        ended = true;
        kill(-pid, SIGKILL);
        kill(-pid, SIGCONT);
      }
    }
    struct pollfd pfd{fds[0], POLLIN, 0};
    const int ready = poll(&pfd, 1, ended ? 1000 : 100);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      if (ended) break;  // nothing more within a second of the end: a writer outside the group
      continue;
    }
    const ssize_t n = read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    r.output.append(buf, static_cast<std::size_t>(n));
  }
  close(fds[0]);
  if (!ended) {
    while (waitpid(pid, &r.status, 0) < 0 && errno == EINTR) {
    }
    kill(-pid, SIGKILL);
  }
  return r;
}

inline std::ostream& operator<<(std::ostream& os, const ChildResult& r) { return os << r.describe(); }

// A T in memory shared between parent and forked child.
template <class T>
class Shared {
 public:
  Shared() {
    void* p = mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) std::abort();
    ptr_ = new (p) T();
  }
  ~Shared() {
    ptr_->~T();
    munmap(ptr_, sizeof(T));
  }
  Shared(const Shared&) = delete;
  Shared& operator=(const Shared&) = delete;
  T* operator->() const { return ptr_; }
  T& operator*() const { return *ptr_; }

 private:
  T* ptr_;
};

// A page with the given protection, unmapped at scope exit.
class Page {
 public:
  explicit Page(int prot, std::size_t pages = 1) : size_(pages * static_cast<std::size_t>(sysconf(_SC_PAGESIZE))) {
    p_ = static_cast<char*>(mmap(nullptr, size_, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (p_ == MAP_FAILED) std::abort();
  }
  ~Page() { munmap(p_, size_); }
  Page(const Page&) = delete;
  Page& operator=(const Page&) = delete;
  char* get() const { return p_; }
  std::size_t size() const { return size_; }
  void protect(int prot) const {
    if (mprotect(p_, size_, prot) != 0) std::abort();
  }

 private:
  std::size_t size_;
  char* p_;
};

}  // namespace faultline::test
