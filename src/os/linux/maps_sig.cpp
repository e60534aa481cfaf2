// os/linux/maps_sig.cpp: /proc/self/maps parser over a fixed buffer (signal path).
#include "os/linux/maps.hpp"

#include <fcntl.h>

#include "core/format.hpp"
#include "os/linux/syscall.hpp"

namespace faultline::os {

namespace {

const char* skip_spaces(const char* p) noexcept {
  while (*p == ' ' || *p == '\t') ++p;
  return p;
}
const char* skip_field(const char* p) noexcept {
  while (*p != ' ' && *p != '\t' && *p != '\0') ++p;
  return skip_spaces(p);
}

// "start-end perms offset dev inode [path]"
bool parse_line(const char* line, MapsEntry* e) noexcept {
  const char* p = line;
  e->start = core::parse_hex(p, &p);
  if (*p != '-') return false;
  e->end = core::parse_hex(p + 1, &p);
  p = skip_spaces(p);
  for (int i = 0; i < 4; ++i) e->perms[i] = *p != '\0' && *p != ' ' ? *p++ : '-';
  e->perms[4] = '\0';
  p = skip_spaces(p);
  e->offset = core::parse_hex(p, &p);
  p = skip_spaces(p);
  p = skip_field(p);  // dev
  e->inode = 0;
  while (*p >= '0' && *p <= '9') e->inode = e->inode * 10 + static_cast<std::uint64_t>(*p++ - '0');
  p = skip_spaces(p);
  std::size_t n = 0;
  while (p[n] != '\0' && n + 1 < sizeof e->path) {
    e->path[n] = p[n];
    ++n;
  }
  e->path[n] = '\0';
  return true;
}

}  // namespace

bool for_each_mapping(bool (*fn)(const MapsEntry& e, void* ctx), void* ctx) noexcept {
  long fd = raw_open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (is_err(fd)) return false;
  char buf[4096];
  char line[512];
  std::size_t line_len = 0;
  bool go_on = true;
  while (go_on) {
    long n = raw_read(static_cast<int>(fd), buf, sizeof buf);
    if (n == -4) continue;  // EINTR
    if (n <= 0) break;
    for (long i = 0; i < n && go_on; ++i) {
      char c = buf[i];
      if (c != '\n') {
        if (line_len + 1 < sizeof line) line[line_len++] = c;
        // else: keep the start of an over-long line; its path is truncated
        continue;
      }
      line[line_len] = '\0';
      MapsEntry e;
      if (parse_line(line, &e)) go_on = fn(e, ctx);
      line_len = 0;
    }
  }
  raw_close(static_cast<int>(fd));
  return true;
}

bool find_mapping(std::uintptr_t addr, MapsEntry* out) noexcept {
  struct Find {
    std::uintptr_t addr;
    MapsEntry* out;
    bool found;
  } f{addr, out, false};
  for_each_mapping(
      [](const MapsEntry& e, void* c) {
        auto* st = static_cast<Find*>(c);
        if (st->addr >= e.start && st->addr < e.end) {
          *st->out = e;
          st->found = true;
          return false;
        }
        return true;
      },
      &f);
  return f.found;
}

long map_count() noexcept {
  long n = 0;
  if (!for_each_mapping([](const MapsEntry&, void* ctx) { return ++*static_cast<long*>(ctx), true; }, &n)) return -1;
  return n;
}

long max_map_count() noexcept {
  const long fd = raw_open("/proc/sys/vm/max_map_count", O_RDONLY | O_CLOEXEC);
  if (is_err(fd)) return -1;
  char buf[32] = {};
  const long n = raw_read(static_cast<int>(fd), buf, sizeof buf - 1);
  raw_close(static_cast<int>(fd));
  if (n <= 0) return -1;
  long v = 0;
  for (long i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; ++i) v = v * 10 + (buf[i] - '0');
  return v;
}

void map_limit_text(char* buf, std::size_t cap) noexcept {
  core::Formatter f(buf, cap);
  f.put("ENOMEM: the process has ").dec(map_count()).put(" mappings and vm.max_map_count is ").dec(max_map_count())
      .put(" (each page a region protects apart from its neighbours splits a mapping); use the userfaultfd backend, "
           "a larger fault_around, or raise vm.max_map_count");
  f.c_str();
}

bool range_matches(std::uintptr_t start, std::uintptr_t end, std::uint64_t inode) noexcept {
  struct Walk {
    std::uintptr_t next, end;
    std::uint64_t inode;
    bool ok;
  } w{start, end, inode, true};
  const bool read = for_each_mapping(
      [](const MapsEntry& e, void* ctx) {
        auto& k = *static_cast<Walk*>(ctx);
        if (e.end <= k.next) return true;
        if (e.start > k.next || e.start >= k.end) {  // a hole, or past the range
          k.ok = k.next >= k.end;
          return false;
        }
        const bool anonymous = e.inode == 0 && (e.path[0] == '\0' || core::str_starts_with(e.path, "[anon:"));
        if (k.inode == 0 ? !anonymous || e.perms[3] != 'p' : e.inode != k.inode) {
          k.ok = false;
          return false;
        }
        k.next = e.end;
        return k.next < k.end;
      },
      &w);
  return read && w.ok && w.next >= end;
}

}  // namespace faultline::os
