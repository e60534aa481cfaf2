// backend/uffd/remote.cpp: a pager region served by another process, the program's side (the pager
// process's side is pager/remote/serve.cpp; the messages are pager/remote/protocol.hpp). Not signal path.
//
// The region gets a userfaultfd of its own, sent with the region's description over the socket, once the
// pager process's credentials are what the options require. Then a watchdog thread of the program reads
// the region's faults itself and sends the pager one request per faulting page, each with a deadline
// (fill_timeout): the pager copies the pages in and answers. A page whose request is answered with an
// error, or not answered in time, fails (UFFDIO_POISON; without it, a SIGBUS queued to the faulting
// thread); once the pager is gone (the socket hangs up, or it sends something that is not a valid
// message), every pending request fails at once and so does every later fault. So no faulting thread
// waits longer than fill_timeout (plus the watchdog's tick), whatever the region's size, and a silent
// or stopped pager is handled like a dead one.
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "backend/uffd/uffd.hpp"
#include "core/page.hpp"
#include "faultline/remote_pager.hpp"
#include "os/linux/syscall.hpp"
#include "os/linux/thread_start.hpp"
#include "os/linux/uffd.hpp"
#include "pager/remote/protocol.hpp"

namespace faultline::backend::uffd {

namespace {

struct Pending {
  std::uint64_t seq;
  std::uintptr_t page;
  long tid;
  std::int64_t deadline_ns;
};

class Watchdog {
 public:
  Watchdog(UffdRegion* r, int sock, int stop) : r_(r), sock_(sock), stop_(stop), page_(core::page_size()) {}

  void run() {
    for (;;) {
      const std::int64_t now = os::monotonic_ns();
      expire(now);
      int timeout = -1;
      if (!pending_.empty()) {
        std::int64_t next = pending_.front().deadline_ns;
        for (const Pending& p : pending_) next = std::min(next, p.deadline_ns);
        timeout = static_cast<int>(std::max<std::int64_t>(1, (next - now) / 1'000'000 + 1));
      }
      struct pollfd fds[3] = {{stop_, POLLIN, 0}, {sock_, static_cast<short>(dead_ ? 0 : (POLLIN | POLLRDHUP)), 0},
                              {r_->fd, POLLIN, 0}};
      if (poll(fds, 3, timeout) < 0 && errno != EINTR) continue;
      if (fds[0].revents != 0) break;  // the region is being unregistered
      if (!dead_ && (fds[1].revents & POLLIN) != 0) read_replies();
      if (!dead_ && (fds[1].revents & (POLLHUP | POLLRDHUP | POLLERR)) != 0 && !(fds[1].revents & POLLIN)) {
        die("the remote pager (the process at the other end of its socket) went away");
      }
      if ((fds[2].revents & POLLIN) != 0) read_faults();
    }
  }

 private:
  void fail(std::uintptr_t page, long tid, int err, const char* reason) { r_->fail_page(page, err, reason, tid); }

  // The pager is gone or broken: every pending page fails now, every later fault at once.
  void die(const char* why) {
    dead_ = true;
    std::snprintf(why_, sizeof why_, "%s", why);
    for (const Pending& p : pending_) fail(p.page, p.tid, EPIPE, why_);
    pending_.clear();
  }

  void expire(std::int64_t now) {
    for (std::size_t i = 0; i < pending_.size();) {
      if (pending_[i].deadline_ns > now) {
        ++i;
        continue;
      }
      fail(pending_[i].page, pending_[i].tid, ETIMEDOUT, "the remote pager did not answer within fill_timeout");
      pending_[i] = pending_.back();
      pending_.pop_back();
    }
  }

  void read_faults() {
    struct uffd_msg msgs[16];
    const long n = os::raw_read(r_->fd, msgs, sizeof msgs);
    for (long i = 0; i < n / static_cast<long>(sizeof(uffd_msg)); ++i) {
      if (msgs[i].event == UFFD_EVENT_UNMAP) r_->unmapped_seen.store(true, std::memory_order_release);  // (read under
      // no mutex: the remote region's own fd; memory_is_ours() reads /proc/self/maps for it)
      if (msgs[i].event != UFFD_EVENT_PAGEFAULT) continue;
      const std::uintptr_t page = msgs[i].arg.pagefault.address & ~(page_ - 1);
      const long tid = static_cast<long>(msgs[i].arg.pagefault.feat.ptid);
      if (dead_) {
        fail(page, tid, EPIPE, why_);
        continue;
      }
      // Several threads on one page: one request; the pager's copy wakes them all.
      if (std::any_of(pending_.begin(), pending_.end(), [&](const Pending& p) { return p.page == page; })) continue;
      remote::Request q{};
      q.magic = remote::kMagic;
      q.type = remote::kRequest;
      q.seq = ++seq_;
      q.offset = page - r_->base;
      q.length = page_;
      q.write = (msgs[i].arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE) ? 1 : 0;
      q.tid = static_cast<std::int32_t>(tid);
      const ssize_t sent = send(sock_, &q, sizeof q, MSG_NOSIGNAL);
      if (sent != static_cast<ssize_t>(sizeof q)) {
        const int e = sent < 0 ? errno : 0;
        die(e == EPIPE || e == ECONNRESET
                ? "the remote pager (the process at the other end of its socket) went away (a request could not be sent)"
                : "the remote pager's socket refused a request");
        fail(page, tid, EPIPE, why_);
        continue;
      }
      pending_.push_back(Pending{q.seq, page, tid,
                                 os::monotonic_ns() + static_cast<std::int64_t>(r_->fill_timeout_ms) * 1'000'000});
    }
  }

  void read_replies() {
    const ssize_t n = recv(sock_, inbox_ + inbox_len_, sizeof inbox_ - inbox_len_, MSG_DONTWAIT);
    if (n == 0) return die("the remote pager (the process at the other end of its socket) went away");
    if (n < 0) {
      if (errno != EAGAIN && errno != EINTR) die("the remote pager's socket failed");
      return;
    }
    inbox_len_ += static_cast<std::size_t>(n);
    while (inbox_len_ >= sizeof(remote::Reply)) {
      remote::Reply reply;
      if (const char* bad = remote::parse_reply(inbox_, sizeof reply, &reply); bad != nullptr) {
        char why[160];
        std::snprintf(why, sizeof why, "the remote pager sent %s: it is no longer trusted", bad);
        return die(why);
      }
      std::memmove(inbox_, inbox_ + sizeof reply, inbox_len_ - sizeof reply);
      inbox_len_ -= sizeof reply;
      auto it = std::find_if(pending_.begin(), pending_.end(), [&](const Pending& p) { return p.seq == reply.seq; });
      if (it == pending_.end()) continue;  // answered after its deadline: the page has failed already
      if (reply.error != 0) {
        char why[128];
        std::snprintf(why, sizeof why, "the remote pager: %s", reply.reason);
        fail(it->page, it->tid, reply.error, why);
      }
      *it = pending_.back();
      pending_.pop_back();
    }
  }

  UffdRegion* r_;
  int sock_, stop_;
  std::size_t page_;
  bool dead_ = false;
  char why_[160] = {};
  std::uint64_t seq_ = 0;
  std::vector<Pending> pending_;
  unsigned char inbox_[sizeof(remote::Reply) * 8] = {};
  std::size_t inbox_len_ = 0;
};

// The region's userfaultfd and `stop` are closed with the region (UffdRegion's destructor), after this
// thread has dropped its pin.
void watchdog(UffdRegion* r, int sock, int stop) {
  Watchdog(r, sock, stop).run();
  r->inflight.fetch_sub(1, std::memory_order_acq_rel);
}

}  // namespace

Result<void> attach_remote(UffdRegion& r, int sock) {
  // Credentials first (validate first, act last): the region's userfaultfd gives its reader the region.
  if (r.remote_uid >= 0 || r.remote_pid > 0) {
    struct ucred cred{};
    socklen_t len = sizeof cred;
    if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
      return Error::from_errno("remote pager: SO_PEERCRED (is it a connected Unix socket?)", errno);
    }
    if ((r.remote_uid >= 0 && static_cast<long>(cred.uid) != r.remote_uid) || (r.remote_pid > 0 && cred.pid != r.remote_pid)) {
      return Error(Errc::invalid_argument, "remote pager: the process at the other end of the socket (pid " +
                                               std::to_string(cred.pid) + ", uid " + std::to_string(cred.uid) +
                                               ") is not the one the region's options require");
    }
  }
  std::string why;
  const int fd = probe(&why);  // a userfaultfd of the region's own
  if (fd < 0) return Error(Errc::unsupported, "remote pager: userfaultfd: " + why);
  if (const long rc = os::uffd_register(fd, r.base, r.end - r.base, UFFDIO_REGISTER_MODE_MISSING); os::is_err(rc)) {
    close(fd);
    return Error::from_errno("UFFDIO_REGISTER (remote pager)", static_cast<int>(-rc));
  }
  remote::Hello hello{};
  hello.magic = remote::kMagic;
  hello.type = remote::kHello;
  hello.version = remote::kVersion;
  hello.base = r.base;
  hello.size = r.end - r.base;
  hello.page_size = core::page_size();
  std::snprintf(hello.name, sizeof hello.name, "%s", r.name);
  char control[CMSG_SPACE(sizeof(int))] = {};
  struct iovec iov{&hello, sizeof hello};
  struct msghdr msg = remote::hello_message(iov, control, sizeof control);
  struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  if (sendmsg(sock, &msg, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof hello)) {
    const int e = errno;
    close(fd);
    return Error::from_errno("sendmsg (remote pager socket)", e);
  }
  const long stop = os::raw_eventfd(0, EFD_CLOEXEC);
  if (os::is_err(stop)) {
    close(fd);
    return Error::from_errno("eventfd", static_cast<int>(-stop));
  }
  r.fd = fd;
  r.remote_stop = static_cast<int>(stop);
  r.inflight.fetch_add(1, std::memory_order_acq_rel);  // the watchdog's pin, dropped when it exits
  UffdRegion* rp = &r;
  const int stop_fd = static_cast<int>(stop);
  auto t = os::start_thread("remote pager's watchdog thread", [rp, sock, stop_fd] { watchdog(rp, sock, stop_fd); });
  if (!t) {
    r.inflight.fetch_sub(1, std::memory_order_acq_rel);
    close(stop_fd);
    close(fd);
    r.fd = -1;
    r.remote_stop = -1;
    return Error(t.error().code(), "remote pager: " + t.error().message());
  }
  t.value().detach();
  return {};
}

void stop_remote(UffdRegion& r) noexcept {
  if (r.remote_stop < 0) return;
  const std::uint64_t one = 1;
  (void)!write(r.remote_stop, &one, sizeof one);
}

}  // namespace faultline::backend::uffd
