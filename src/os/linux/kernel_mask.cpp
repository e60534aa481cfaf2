// os/linux/kernel_mask.cpp: the kernel-feature mask's table, profiles and arming, and FAULTLINE_KERNEL.
// Not signal path (applying the mask is kernel_mask_sig.cpp). See faultline/kernel_mask.hpp.
#include "faultline/kernel_mask.hpp"

#include <linux/userfaultfd.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <mutex>

#include "os/linux/inject.hpp"
#include "os/linux/inject_state.hpp"
#include "linux_uapi.hpp"

namespace faultline::kernel_mask {

namespace {

using os::inject::g_mask;

constexpr Facility kTable[] = {
#define FACILITY(name, kind, value, major, minor, use) \
  {name, Kind::kind, static_cast<std::uint64_t>(value), major, minor, use},
#include "os/linux/kernel_table.inc"
#undef FACILITY
};

// What a spec hides, before it is published to the atomics.
struct Hidden {
  std::uint64_t features = 0, ioctls = 0;
  bool syscall = false, device = false, user_mode_only = false, kernel_faults = false, pagemap_scan = false,
       populate = false;
  bool any() const {
    return features != 0 || ioctls != 0 || syscall || device || user_mode_only || kernel_faults || pagemap_scan ||
           populate;
  }
};

void hide(Hidden& h, const Facility& f) {
  switch (f.kind) {
    case Kind::system_call: h.syscall = true; break;
    case Kind::device: h.device = true; break;
    case Kind::flag: h.user_mode_only = true; break;
    case Kind::feature: h.features |= f.value; break;
    case Kind::ioctl: h.ioctls |= std::uint64_t{1} << f.value; break;
    case Kind::pagemap: h.pagemap_scan = true; break;
    case Kind::madvise: h.populate = true; break;
    case Kind::privilege: h.kernel_faults = true; break;
  }
}

const Facility* find(std::string_view name) {
  for (const Facility& f : kTable) {
    if (name == f.name) return &f;
  }
  return nullptr;
}

// A feature and the ioctl that uses it are one facility to a reader: hiding either hides both.
const char* partner(std::string_view name) {
  static constexpr const char* kPairs[][2] = {{"POISON", "UFFDIO_POISON"},
                                              {"MOVE", "UFFDIO_MOVE"},
                                              {"PAGEFAULT_FLAG_WP", "UFFDIO_WRITEPROTECT"}};
  for (const auto& p : kPairs) {
    if (name == p[0]) return p[1];
    if (name == p[1]) return p[0];
  }
  return nullptr;
}

bool parse_version(std::string_view s, int* major, int* minor) {
  int v[2] = {0, 0};
  int part = 0;
  bool digit = false;
  for (char c : s) {
    if (c >= '0' && c <= '9') {
      v[part] = v[part] * 10 + (c - '0');
      digit = true;
      if (v[part] > 1000) return false;
    } else if (c == '.' && part == 0 && digit) {
      part = 1;
      digit = false;
    } else {
      return false;
    }
  }
  if (!digit || part != 1) return false;
  *major = v[0];
  *minor = v[1];
  return true;
}

constinit std::mutex g_mutex;
constinit char g_spec[256] = {};

void publish(const Hidden& h, std::string_view spec) {
  g_mask.features.store(h.features, std::memory_order_relaxed);
  g_mask.ioctls.store(h.ioctls, std::memory_order_relaxed);
  g_mask.syscall.store(h.syscall, std::memory_order_relaxed);
  g_mask.device.store(h.device, std::memory_order_relaxed);
  g_mask.user_mode_only.store(h.user_mode_only, std::memory_order_relaxed);
  g_mask.kernel_faults.store(h.kernel_faults, std::memory_order_relaxed);
  g_mask.pagemap_scan.store(h.pagemap_scan, std::memory_order_relaxed);
  g_mask.populate.store(h.populate, std::memory_order_relaxed);
  g_mask.generation.fetch_add(1, std::memory_order_release);
  g_mask.active.store(h.any(), std::memory_order_release);
  os::inject::update_hooked();
  const std::size_t n = spec.size() < sizeof g_spec - 1 ? spec.size() : sizeof g_spec - 1;
  std::memcpy(g_spec, spec.data(), n);
  g_spec[n] = '\0';
}

}  // namespace

std::span<const Facility> facilities() noexcept { return kTable; }

Result<void> set(std::string_view spec) {
  Hidden h;
  std::string normal;
  std::size_t pos = 0;
  while (pos <= spec.size()) {
    std::size_t comma = spec.find(',', pos);
    if (comma == std::string_view::npos) comma = spec.size();
    std::string_view item = spec.substr(pos, comma - pos);
    pos = comma + 1;
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item.empty() || item == "current") continue;
    int major = 0, minor = 0;
    if (item == "none") {
      h.syscall = h.device = true;
    } else if (item == "unprivileged") {
      h.kernel_faults = true;
    } else if (parse_version(item, &major, &minor)) {
      for (const Facility& f : kTable) {
        if (f.kind != Kind::privilege && (f.major > major || (f.major == major && f.minor > minor))) hide(h, f);
      }
    } else if (const Facility* f = find(item); f != nullptr) {
      hide(h, *f);
      if (const char* p = partner(item); p != nullptr) hide(h, *find(p));
    } else {
      return Error(Errc::invalid_argument,
                   "kernel mask: '" + std::string(item) +
                       "' is neither a kernel version (5.15), a profile (none, unprivileged, current) nor a "
                       "facility (`faultline info --kernels` lists them)");
    }
    if (!normal.empty()) normal += ',';
    normal += item;
  }
  std::lock_guard lock(g_mutex);
  publish(h, normal);
  return {};
}

void clear() noexcept {
  std::lock_guard lock(g_mutex);
  publish(Hidden{}, "");
}

std::string current() {
  std::lock_guard lock(g_mutex);
  return g_spec;
}

bool hidden(std::string_view name) noexcept {
  const Facility* f = find(name);
  if (f == nullptr) return false;
  switch (f->kind) {
    case Kind::system_call: return g_mask.syscall.load();
    case Kind::device: return g_mask.device.load() || g_mask.kernel_faults.load();
    case Kind::flag: return g_mask.user_mode_only.load();
    case Kind::feature: return (g_mask.features.load() & f->value) != 0;
    case Kind::ioctl: return ((g_mask.ioctls.load() >> f->value) & 1) != 0;
    case Kind::pagemap: return g_mask.pagemap_scan.load();
    case Kind::madvise: return g_mask.populate.load();
    case Kind::privilege: return g_mask.kernel_faults.load();
  }
  return false;
}

namespace {

// FAULTLINE_KERNEL, read as the library loads (before any userfaultfd can be opened). A spec that does
// not parse is said on stderr and nothing is hidden: a masked test run must not pass unmasked silently,
// and the line says why.
__attribute__((constructor)) void from_environment() {
  const char* spec = secure_getenv("FAULTLINE_KERNEL");
  if (spec == nullptr || *spec == '\0') return;
  if (auto r = set(spec); !r) {
    std::fprintf(stderr, "faultline: FAULTLINE_KERNEL=%s: %s; nothing is hidden\n", spec, r.error().message().c_str());
  }
}

}  // namespace

}  // namespace faultline::kernel_mask
