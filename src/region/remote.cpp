// region/remote.cpp: pager regions served by another process (userfaultfd handed over a Unix socket),
// and the watchdog that poisons the region's missing pages when that process goes away.
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

#include "core/format.hpp"
#include "core/page.hpp"
#include "os/linux/uffd.hpp"
#include "region/remote.hpp"

namespace faultline::region::remote {

namespace {

// After the pager died: poison every page still missing (present pages answer -EEXIST), which also
// wakes the threads waiting on them.
void poison_missing(int uffd, std::uintptr_t base, std::size_t size) {
  const std::size_t page = core::page_size();
  for (std::uintptr_t a = base; a < base + size; a += page) os::uffd_poison(uffd, a, page);
}

void watchdog(detail::RegionImpl* r, int uffd, int sock, int stop) {
  const std::uintptr_t base = r->base;
  const std::size_t size = r->end - r->base;
  bool dead = false;
  for (;;) {
    struct pollfd fds[3] = {{stop, POLLIN, 0}, {sock, static_cast<short>(dead ? 0 : POLLRDHUP), 0},
                            {uffd, static_cast<short>(dead ? POLLIN : 0), 0}};
    if (poll(fds, 3, -1) < 0 && errno != EINTR) break;
    if (fds[0].revents != 0) break;  // the region is being unregistered
    if (!dead && (fds[1].revents & (POLLHUP | POLLRDHUP | POLLERR)) != 0) {
      dead = true;
      set_failure(*r, "the remote pager (the process at the other end of its socket) went away");
      poison_missing(uffd, base, size);
    }
    if (dead && (fds[2].revents & POLLIN) != 0) {  // faults the dead pager will never answer
      struct uffd_msg msgs[16];
      const ssize_t n = read(uffd, msgs, sizeof msgs);
      for (ssize_t i = 0; i < n / static_cast<ssize_t>(sizeof(uffd_msg)); ++i) {
        if (msgs[i].event != UFFD_EVENT_PAGEFAULT) continue;
        const std::uintptr_t a = msgs[i].arg.pagefault.address & ~(core::page_size() - 1);
        if (os::is_err(os::uffd_poison(uffd, a, core::page_size()))) os::uffd_wake(uffd, a, core::page_size());
      }
    }
  }
  close(stop);
  close(uffd);
  r->inflight.fetch_sub(1, std::memory_order_acq_rel);
}

}  // namespace

Result<void> attach(detail::RegionImpl& r, int sock) {
  std::string why;
  const int uffd = uffd::probe(&why);  // a userfaultfd of the region's own: the pager reads all of it
  if (uffd < 0) return Error(Errc::unsupported, "remote pager: userfaultfd: " + why);
  struct uffdio_register reg{};
  reg.range.start = r.base;
  reg.range.len = r.end - r.base;
  reg.mode = UFFDIO_REGISTER_MODE_MISSING;
  if (ioctl(uffd, UFFDIO_REGISTER, &reg) != 0) {
    const int e = errno;
    close(uffd);
    return Error::from_errno("UFFDIO_REGISTER (remote pager)", e);
  }
  remote_pager::RegionDescription desc;
  desc.base = r.base;
  desc.size = r.end - r.base;
  desc.page_size = core::page_size();
  std::snprintf(desc.name, sizeof desc.name, "%s", r.name);
  char control[CMSG_SPACE(sizeof(int))] = {};
  struct iovec iov{&desc, sizeof desc};
  struct msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &uffd, sizeof(int));
  if (sendmsg(sock, &msg, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof desc)) {
    const int e = errno;
    close(uffd);
    return Error::from_errno("sendmsg (remote pager socket)", e);
  }
  const int stop = eventfd(0, EFD_CLOEXEC);
  if (stop < 0) {
    close(uffd);
    return Error::from_errno("eventfd", errno);
  }
  r.uffd = uffd;
  r.remote_stop = stop;
  r.inflight.fetch_add(1, std::memory_order_acq_rel);  // the watchdog's pin, dropped when it exits
  std::thread(watchdog, &r, uffd, sock, stop).detach();
  return {};
}

void stop(detail::RegionImpl& r) noexcept {
  if (r.remote_stop < 0) return;
  const std::uint64_t one = 1;
  (void)!write(r.remote_stop, &one, sizeof one);
}

}  // namespace faultline::region::remote

namespace faultline::remote_pager {

RemoteRegion::~RemoteRegion() {
  if (uffd_ >= 0) close(uffd_);
}

Result<RemoteRegion> receive(int socket) {
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
}

Result<void> RemoteRegion::serve(FillFn fn, void* data, bool (*stop)(void*), void* stop_data) {
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
    const ssize_t n = read(uffd_, msgs, sizeof msgs);
    if (n <= 0) continue;
    for (ssize_t i = 0; i < n / static_cast<ssize_t>(sizeof(uffd_msg)); ++i) {
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
}

}  // namespace faultline::remote_pager
