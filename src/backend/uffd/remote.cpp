// backend/uffd/remote.cpp: a pager region served by another process, the program's side: the region gets
// a userfaultfd of its own, sent with the region's description over the socket; a watchdog thread fails
// the region's missing pages if the other end goes away. The pager process's side is
// pager/remote/serve.cpp. Not signal path.
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <system_error>
#include <thread>

#include "backend/uffd/uffd.hpp"
#include "core/page.hpp"
#include "faultline/remote_pager.hpp"
#include "os/linux/thread_start.hpp"
#include "os/linux/uffd.hpp"

namespace faultline::backend::uffd {

namespace {

// After the pager died: poison every page still missing (present pages answer -EEXIST), which also
// wakes the threads waiting on them.
void poison_missing(int fd, std::uintptr_t base, std::size_t size) {
  const std::size_t page = core::page_size();
  for (std::uintptr_t a = base; a < base + size; a += page) os::uffd_poison(fd, a, page);
}

void watchdog(UffdRegion* r, int fd, int sock, int stop) {
  const std::uintptr_t base = r->base;
  const std::size_t size = r->end - r->base;
  bool dead = false;
  for (;;) {
    struct pollfd fds[3] = {{stop, POLLIN, 0}, {sock, static_cast<short>(dead ? 0 : POLLRDHUP), 0},
                            {fd, static_cast<short>(dead ? POLLIN : 0), 0}};
    if (poll(fds, 3, -1) < 0 && errno != EINTR) break;
    if (fds[0].revents != 0) break;  // the region is being unregistered
    if (!dead && (fds[1].revents & (POLLHUP | POLLRDHUP | POLLERR)) != 0) {
      dead = true;
      r->set_failure("the remote pager (the process at the other end of its socket) went away");
      poison_missing(fd, base, size);
    }
    if (dead && (fds[2].revents & POLLIN) != 0) {  // faults the dead pager will never answer
      struct uffd_msg msgs[16];
      const long n = os::raw_read(fd, msgs, sizeof msgs);
      for (long i = 0; i < n / static_cast<long>(sizeof(uffd_msg)); ++i) {
        if (msgs[i].event != UFFD_EVENT_PAGEFAULT) continue;
        const std::uintptr_t a = msgs[i].arg.pagefault.address & ~(core::page_size() - 1);
        if (os::is_err(os::uffd_poison(fd, a, core::page_size()))) os::uffd_wake(fd, a, core::page_size());
      }
    }
  }
  close(stop);
  close(fd);
  r->inflight.fetch_sub(1, std::memory_order_acq_rel);
}

}  // namespace

Result<void> attach_remote(UffdRegion& r, int sock) {
  std::string why;
  const int fd = probe(&why);  // a userfaultfd of the region's own: the pager reads all of it
  if (fd < 0) return Error(Errc::unsupported, "remote pager: userfaultfd: " + why);
  if (const long rc = os::uffd_register(fd, r.base, r.end - r.base, UFFDIO_REGISTER_MODE_MISSING); os::is_err(rc)) {
    close(fd);
    return Error::from_errno("UFFDIO_REGISTER (remote pager)", static_cast<int>(-rc));
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
  std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  if (sendmsg(sock, &msg, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof desc)) {
    const int e = errno;
    close(fd);
    return Error::from_errno("sendmsg (remote pager socket)", e);
  }
  const int stop = eventfd(0, EFD_CLOEXEC);
  if (stop < 0) {
    const int e = errno;
    close(fd);
    return Error::from_errno("eventfd", e);
  }
  r.fd = fd;
  r.remote_stop = stop;
  r.inflight.fetch_add(1, std::memory_order_acq_rel);  // the watchdog's pin, dropped when it exits
  UffdRegion* rp = &r;
  auto t = os::start_thread("remote pager's watchdog thread", [rp, fd, sock, stop] { watchdog(rp, fd, sock, stop); });
  if (!t) {
    r.inflight.fetch_sub(1, std::memory_order_acq_rel);
    close(stop);
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
