// pager/remote/serve.cpp: a pager region served by another process, the pager process's side: receiving
// the region (its userfaultfd and description) and serving its faults. The program's side is
// backend/uffd/remote.cpp. Not signal path.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "core/guard.hpp"
#include "faultline/remote_pager.hpp"
#include "os/linux/uffd.hpp"

namespace faultline::remote_pager {

RemoteRegion::~RemoteRegion() {
  if (uffd_ >= 0) close(uffd_);
}

Result<RemoteRegion> receive(int socket) {
  return core::guarded([&]() -> Result<RemoteRegion> {
    RemoteRegion r;
    char control[CMSG_SPACE(sizeof(int))] = {};
    struct iovec iov{&r.desc_, sizeof r.desc_};
    struct msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const ssize_t n = recvmsg(socket, &msg, MSG_CMSG_CLOEXEC);
    if (n != static_cast<ssize_t>(sizeof r.desc_)) {
      return Error(Errc::invalid_argument, "remote_pager::receive: no region description on the socket");
    }
    const struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    if (c == nullptr || c->cmsg_type != SCM_RIGHTS) {
      return Error(Errc::invalid_argument, "remote_pager::receive: no userfaultfd on the socket");
    }
    std::memcpy(&r.uffd_, CMSG_DATA(c), sizeof(int));
    return r;
  });
}

Result<void> RemoteRegion::serve(FillFn fn, void* data, bool (*stop)(void*), void* stop_data) {
  return core::guarded([&]() -> Result<void> {
    if (fn == nullptr || uffd_ < 0) return Error(Errc::invalid_argument, "RemoteRegion::serve: no fill function or region");
    const std::size_t page = desc_.page_size;
    std::vector<std::byte> buffer(page);
    struct uffd_msg msgs[32];
    for (;;) {
      if (stop != nullptr && stop(stop_data)) return {};
      struct pollfd pfd{uffd_, POLLIN, 0};
      const int p = poll(&pfd, 1, 100);
      if (p < 0 && errno != EINTR) return Error::from_errno("poll (remote pager)", errno);
      if (pfd.revents & (POLLERR | POLLHUP)) return {};  // the program's memory is gone
      if (p <= 0) continue;
      const long n = os::raw_read(uffd_, msgs, sizeof msgs);
      if (n <= 0) continue;
      for (long i = 0; i < n / static_cast<long>(sizeof(uffd_msg)); ++i) {
        if (msgs[i].event != UFFD_EVENT_PAGEFAULT) continue;
        const std::uintptr_t a = msgs[i].arg.pagefault.address & ~(page - 1);
        const FillRequest req{RegionInfo{desc_.name, desc_.base, desc_.size, Policy::pager, perm_read | perm_write},
                              a - desc_.base,
                              page,
                              (msgs[i].arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE) ? Access::write : Access::read,
                              0,
                              static_cast<long>(msgs[i].arg.pagefault.feat.ptid),
                              buffer.data()};
        const FillStatus st = fn(req, data);
        std::size_t done = 0;
        const long rc = st.error == 0 ? os::uffd_copy(uffd_, a, buffer.data(), page, &done) : os::uffd_poison(uffd_, a, page);
        if (os::is_err(rc) && done == 0) os::uffd_wake(uffd_, a, page);
      }
    }
  });
}

}  // namespace faultline::remote_pager
