// os/linux/kernel_mask_sig.cpp: applying the kernel-feature mask to a system call faultline makes (signal
// path: the raw-syscall layer's hook calls it wherever faultline makes a call, handlers included). Reads
// atomics and the caller's own argument structures; no allocation, no lock. The mask is armed by
// kernel_mask.cpp; faultline/kernel_mask.hpp says what each hidden facility looks like.
#include <sys/mman.h>
#include <sys/syscall.h>

#include <cerrno>

#include "os/linux/inject_state.hpp"
#include "os/linux/uffd.hpp"

namespace faultline::os::inject {

constinit MaskState g_mask{};

namespace {

bool is_device(const char* path) noexcept {
  static constexpr char kDev[] = "/dev/userfaultfd";
  if (path == nullptr) return false;
  for (unsigned i = 0; i < sizeof kDev; ++i) {
    if (path[i] != kDev[i]) return false;
  }
  return true;
}

bool ioctl_hidden(unsigned nr) noexcept {
  return (g_mask.ioctls.load(std::memory_order_relaxed) >> nr) & 1;
}

long before_ioctl(unsigned long request, long arg) noexcept {
  switch (request) {
    case UFFDIO_API: {
      // The kernel refuses a request for a feature it does not have.
      const auto* api = reinterpret_cast<const struct uffdio_api*>(arg);
      return (api->features & g_mask.features.load(std::memory_order_relaxed)) != 0 ? -EINVAL : 0;
    }
    case UFFDIO_REGISTER: {
      const auto* reg = reinterpret_cast<const struct uffdio_register*>(arg);
      if ((reg->mode & UFFDIO_REGISTER_MODE_WP) != 0 && ioctl_hidden(_UFFDIO_WRITEPROTECT)) return -EINVAL;
      if ((reg->mode & UFFDIO_REGISTER_MODE_MINOR) != 0 && ioctl_hidden(_UFFDIO_CONTINUE)) return -EINVAL;
      return 0;
    }
    case UFFDIO_COPY: {
      const auto* c = reinterpret_cast<const struct uffdio_copy*>(arg);
      return (c->mode & UFFDIO_COPY_MODE_WP) != 0 && ioctl_hidden(_UFFDIO_WRITEPROTECT) ? -EINVAL : 0;
    }
    case UFFDIO_WRITEPROTECT: return ioctl_hidden(_UFFDIO_WRITEPROTECT) ? -EINVAL : 0;
    case UFFDIO_CONTINUE: {
      // UFFDIO_CONTINUE_MODE_WP has no feature bit; it came with WP_UNPOPULATED (Linux 6.4), whose
      // release stands for it (kernel_table.inc).
      const auto* c = reinterpret_cast<const struct uffdio_continue*>(arg);
      const bool wp_hidden = (c->mode & UFFDIO_CONTINUE_MODE_WP) != 0 &&
                             (g_mask.features.load(std::memory_order_relaxed) & UFFD_FEATURE_WP_UNPOPULATED) != 0;
      return ioctl_hidden(_UFFDIO_CONTINUE) || wp_hidden ? -EINVAL : 0;
    }
    case UFFDIO_POISON: return ioctl_hidden(_UFFDIO_POISON) ? -EINVAL : 0;
    case UFFDIO_MOVE: return ioctl_hidden(_UFFDIO_MOVE) ? -EINVAL : 0;
    case PAGEMAP_SCAN: return g_mask.pagemap_scan.load(std::memory_order_relaxed) ? -ENOTTY : 0;
    default: return 0;
  }
}

}  // namespace

long mask_before(long n, long a1, long a2, long a3) noexcept {
  switch (n) {
    case SYS_userfaultfd:
      if (g_mask.syscall.load(std::memory_order_relaxed)) return -EPERM;
      if ((a1 & UFFD_USER_MODE_ONLY) != 0) return g_mask.user_mode_only.load(std::memory_order_relaxed) ? -EINVAL : 0;
      return g_mask.kernel_faults.load(std::memory_order_relaxed) ? -EPERM : 0;
    case SYS_openat:
      if (!is_device(reinterpret_cast<const char*>(a2))) return 0;
      if (g_mask.device.load(std::memory_order_relaxed)) return -ENOENT;
      return g_mask.kernel_faults.load(std::memory_order_relaxed) ? -EACCES : 0;
    case SYS_madvise:
      return (a3 == MADV_POPULATE_READ || a3 == MADV_POPULATE_WRITE) && g_mask.populate.load(std::memory_order_relaxed)
                 ? -EINVAL
                 : 0;
    case SYS_ioctl: return before_ioctl(static_cast<unsigned long>(a2), a3);
    default: return 0;
  }
}

void mask_after(long n, long, long a2, long a3) noexcept {
  if (n != SYS_ioctl) return;
  if (static_cast<unsigned long>(a2) == UFFDIO_API) {
    reinterpret_cast<struct uffdio_api*>(a3)->features &= ~g_mask.features.load(std::memory_order_relaxed);
  } else if (static_cast<unsigned long>(a2) == UFFDIO_REGISTER) {
    reinterpret_cast<struct uffdio_register*>(a3)->ioctls &= ~g_mask.ioctls.load(std::memory_order_relaxed);
  }
}

}  // namespace faultline::os::inject
