// pager/remote/serve.cpp: a pager region served by another process, the pager process's side: receiving
// the region (its description and its userfaultfd) and serving the program's requests (the program's
// side is backend/uffd/remote.cpp; the messages are protocol.hpp). Every message is validated; a
// malformed one ends serve() with an error, never a crash or a copy outside the region. Not signal path.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/guard.hpp"
#include "core/page.hpp"
#include "faultline/remote_pager.hpp"
#include "os/linux/uffd.hpp"
#include "pager/remote/protocol.hpp"

namespace faultline::remote_pager {

namespace {

// True when `fd` is a userfaultfd (its /proc/self/fd link says so).
bool is_userfaultfd(int fd) {
  char path[64], link[64] = {};
  std::snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  const ssize_t n = readlink(path, link, sizeof link - 1);
  return n > 0 && std::strcmp(link, "anon_inode:[userfaultfd]") == 0;
}

}  // namespace

RemoteRegion::~RemoteRegion() {
  if (uffd_ >= 0) close(uffd_);
}

Result<RemoteRegion> receive(int socket) {
  return core::guarded([&]() -> Result<RemoteRegion> {
    RemoteRegion r;
    remote::Hello hello{};
    char control[CMSG_SPACE(sizeof(int) * 4)] = {};
    struct iovec iov{&hello, sizeof hello};
    struct msghdr msg = remote::hello_message(iov, control, sizeof control);
    const ssize_t n = recvmsg(socket, &msg, MSG_CMSG_CLOEXEC | MSG_WAITALL);
    // Every descriptor that came along is ours to close, whatever else is wrong.
    int fds[4];
    int nfds = 0;
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const int k = static_cast<int>((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
      for (int i = 0; i < k && nfds < 4; ++i) std::memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    }
    auto close_all = [&] {
      for (int i = 0; i < nfds; ++i) close(fds[i]);
    };
    if (n < 0) {
      const int e = errno;
      close_all();
      return Error::from_errno("remote_pager::receive: recvmsg", e);
    }
    if (const char* bad = remote::parse_hello(&hello, static_cast<std::size_t>(n), core::page_size(), &hello); bad) {
      close_all();
      return Error(Errc::invalid_argument, std::string("remote_pager::receive: the program sent ") + bad);
    }
    if (nfds != 1 || (msg.msg_flags & MSG_CTRUNC) != 0 || !is_userfaultfd(fds[0])) {
      close_all();
      return Error(Errc::invalid_argument, "remote_pager::receive: the hello did not carry exactly one userfaultfd");
    }
    r.uffd_ = fds[0];
    r.sock_ = socket;
    r.desc_.base = hello.base;
    r.desc_.size = hello.size;
    r.desc_.page_size = hello.page_size;
    std::memcpy(r.desc_.name, hello.name, sizeof r.desc_.name);
    return r;
  });
}

Result<void> RemoteRegion::serve(FillFn fn, void* data, bool (*stop)(void*), void* stop_data) {
  return core::guarded([&]() -> Result<void> {
    if (fn == nullptr || uffd_ < 0) return Error(Errc::invalid_argument, "RemoteRegion::serve: no fill function or region");
    const std::size_t page = desc_.page_size;
    std::vector<std::byte> buffer(page);
    unsigned char inbox[sizeof(remote::Request) * 8];
    std::size_t inbox_len = 0;
    for (;;) {
      if (stop != nullptr && stop(stop_data)) return {};
      struct pollfd pfd{sock_, POLLIN, 0};
      const int p = poll(&pfd, 1, 100);
      if (p < 0 && errno != EINTR) return Error::from_errno("poll (remote pager)", errno);
      if (p <= 0) continue;
      const ssize_t n = recv(sock_, inbox + inbox_len, sizeof inbox - inbox_len, 0);
      if (n == 0) return {};  // the program closed its end: the region is gone
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        // The program closed its end with answers it had not read yet: gone as well, not an error.
        if (errno == ECONNRESET) return {};
        return Error::from_errno("recv (remote pager)", errno);
      }
      inbox_len += static_cast<std::size_t>(n);
      while (inbox_len >= sizeof(remote::Request)) {
        remote::Request q;
        if (const char* bad = remote::parse_request(inbox, sizeof q, page, desc_.size, &q); bad != nullptr) {
          return Error(Errc::invalid_argument, std::string("RemoteRegion::serve: the program sent ") + bad);
        }
        std::memmove(inbox, inbox + sizeof q, inbox_len - sizeof q);
        inbox_len -= sizeof q;
        if (buffer.size() < q.length) buffer.resize(q.length);
        const FillRequest req{RegionInfo{desc_.name, desc_.base, desc_.size, Policy::pager, perm_read | perm_write},
                              q.offset,
                              q.length,
                              q.write != 0 ? Access::write : Access::read,
                              0,
                              q.tid,
                              buffer.data()};
        FillStatus st;
        try {
          st = fn(req, data);
        } catch (...) {
          st = FillStatus{EIO, "the fill function threw an exception"};
        }
        remote::Reply a{};
        a.magic = remote::kMagic;
        a.type = remote::kReply;
        a.seq = q.seq;
        if (st.error == 0) {
          std::size_t done = 0;
          const long rc = os::uffd_copy(uffd_, desc_.base + q.offset, buffer.data(), q.length, &done);
          if (os::is_err(rc) && rc != -EEXIST) {
            st = FillStatus{static_cast<int>(-rc), "UFFDIO_COPY in the pager process failed"};
          }
        }
        a.error = st.error > 0 && st.error < 4096 ? st.error : (st.error == 0 ? 0 : EIO);
        std::snprintf(a.reason, sizeof a.reason, "%s", st.reason != nullptr ? st.reason : "");
        if (send(sock_, &a, sizeof a, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof a)) return {};  // the program is gone
      }
    }
  });
}

}  // namespace faultline::remote_pager
