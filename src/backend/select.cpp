// backend/select.cpp: the backend selector and the factories. Not signal path.
#include "backend/backend.hpp"

#include "backend/signals/signals.hpp"
#include "backend/uffd/uffd.hpp"

namespace faultline::backend {

Result<Choice> select(const RegionOptions& o, bool adopted) {
  Choice c;
  const std::string who = "region '" + o.name + "'";
  const bool filled = o.policy == Policy::provider || o.policy == Policy::pager;
  const bool needs_uffd = o.write_back || o.max_resident_pages != 0 || o.remote_pager_socket >= 0;
  if (o.backend == Backend::signals) {
    c.backend = Backend::signals;
    c.reason = "signals (requested)";
  } else if (o.huge_pages && o.backend == Backend::automatic && o.policy == Policy::zero_fill) {
    c.backend = Backend::signals;
    c.reason = "signals: transparent huge pages are served by the signal backend";
  } else {
    std::string why;
    if (adopted) {
      why = "adopted memory is served by the signal backend";
    } else if (uffd::usable(o, &why, &c.shmem_cache)) {
      c.backend = Backend::userfaultfd;
      c.reason = why;
    }
    if (c.backend != Backend::userfaultfd) {
      if (o.backend == Backend::userfaultfd || needs_uffd) {
        const char* what = o.backend == Backend::userfaultfd ? "Backend::userfaultfd requested"
                           : o.remote_pager_socket >= 0      ? "a remote pager needs userfaultfd"
                                                             : "write-back and max_resident_pages need userfaultfd";
        return Error(Errc::unsupported, who + ": " + what + ", but " + why);
      }
      c.backend = Backend::signals;
      c.reason = "signals: " + why;
    }
  }
  if (o.fill_path == FillPath::shmem_cache && c.backend != Backend::userfaultfd) {
    return Error(Errc::unsupported, who + ": FillPath::shmem_cache requested, but " + c.reason);
  }
  const bool handler_thread = c.backend == Backend::userfaultfd && o.userfaultfd_mode == UserfaultfdMode::handler_thread;
  if (needs_uffd && o.remote_pager_socket < 0 && !handler_thread) {
    return Error(Errc::unsupported, who + ": write-back and max_resident_pages need the userfaultfd backend with "
                                          "its handler thread (" + c.reason + ")");
  }
  if (o.remote_pager_socket >= 0 && c.backend != Backend::userfaultfd) {
    return Error(Errc::unsupported, who + ": a remote pager needs the userfaultfd backend (" + c.reason + ")");
  }
  // Fills in the faulting thread's handler (provider on signals, self-service) need a signal-safe store.
  const bool fills_in_handler = o.policy == Policy::provider && !handler_thread;
  if (filled && fills_in_handler && o.store != nullptr && !o.store->async_signal_safe()) {
    return Error(Errc::unsupported, who + ": its store is not async-signal-safe, but " + c.reason +
                                          " runs provider fills in the faulting thread's signal handler");
  }
  return c;
}

Result<std::unique_ptr<detail::RegionImpl>> create(const Choice& choice, std::size_t size, const RegionOptions& o) {
  if (choice.backend == Backend::userfaultfd) return uffd::create(size, o, choice.shmem_cache, choice.reason);
  auto r = signals::create(size, o);
  if (r) r.value()->backend_reason = choice.reason;
  return r;
}

std::unique_ptr<detail::RegionImpl> adopt(const Choice& choice, void* addr, std::size_t size, const RegionOptions& o) {
  auto r = signals::adopt(addr, size, o);
  r->backend_reason = choice.reason;
  return r;
}

}  // namespace faultline::backend
