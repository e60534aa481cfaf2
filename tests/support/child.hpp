// tests/support/child.hpp: running a test body that may kill its process in a forked child.
//
// run_child() forks; the child runs `body` with stdout and stderr sent to a pipe, under an alarm so that
// a hang ends as SIGALRM instead of blocking the suite, and exits 0 if `body` returns. The parent
// collects everything the child wrote and how it ended; the child runs in a process group of its own,
// killed when it ends (so a process it forked cannot outlive it and hold the test up). fork_child() is
// its first half, for runners whose child writes elsewhere (a terminal, a file); fork_and_wait() forks
// again from inside a child.
// Shared<T> is memory both sides see (MAP_SHARED), for what a child's handler observed.
#pragma once

#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
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

// Forks a child that closes `parents_end` (when it is not -1), writes its stdout and stderr to `out`, and
// runs `body` under an alarm of `timeout_s`; it exits 0 if `body` returns. Returns the child's pid.
// `own_group`: the child leads a process group of its own (run_child kills it when the child ends).
inline pid_t fork_child(int out, int parents_end, const std::function<void()>& body, unsigned timeout_s,
                        bool own_group = false) {
  pid_t pid = fork();
  if (pid < 0) std::abort();
  if (pid == 0) {
    if (own_group) setpgid(0, 0);
    if (parents_end >= 0) close(parents_end);
    dup2(out, 1);
    dup2(out, 2);
    close(out);
    alarm(timeout_s);
    body();
    std::fflush(nullptr);
    _exit(0);
  }
  return pid;
}

inline ChildResult run_child(const std::function<void()>& body, unsigned timeout_s = 60) {
  int fds[2];
  if (pipe(fds) != 0) std::abort();
  const pid_t pid = fork_child(fds[1], fds[0], body, timeout_s, true);
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

// From inside a child: forks a grandchild that runs `body` (which ends it with _exit, or exits 0 when it
// returns) and returns its wait status.
inline int fork_and_wait(const std::function<void()>& body) {
  const pid_t pid = fork();
  if (pid < 0) std::abort();
  if (pid == 0) {
    body();
    _exit(0);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

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
