// examples/vm_dispatcher.cpp: a VM fault dispatcher in miniature, on faultline's public API only.
//
// In a microkernel (RefOS on seL4, say) a VM server owns the address spaces: each is a set of windows,
// and a fault in a window goes to whoever the window names: the server itself for anonymous memory, a
// content initialiser, an external pager (another process), or nobody, when the access is not allowed.
// Here one process plays both the VM server and its clients. The address space has one window of each
// kind, each a faultline region whose policy says who answers its faults:
//
//   anon          empty memory: zero_fill, pages appear zeroed on first touch;
//   initialised   content-initialised: Policy::pager, filled by a dedicated content-initialiser thread
//                 (a faultline::Pager) running ordinary code while the faulting client waits;
//   external      backed by an external pager: a separate process, forked here, that receives the
//                 region (remote_pager::receive) and fills each page with text naming the page number
//                 (RemoteRegion::serve). That protocol needs userfaultfd; without it a local Pager thread
//                 relays each fill to the same process over the same socket, so the window still has an
//                 external pager;
//   rodata        a read-only window of constants (Policy::provider, perm_read): reads are filled, a
//                 write must never be resolved;
//   guard-below, buffer, guard-above
//                 an untrusted buffer (zero_fill) between two guard windows, carved out of one mapping
//                 with adopt_region so that the three are adjacent.
//
// Four client threads run a scripted workload: each reads and writes its windows, then, after a
// barrier, reads what the others wrote. Every value a client reads is compared with what its window
// promises (zeros, its own stamps, the initialiser's words, the pager's text) and tallied; the VM server
// then asserts every tally. Finally it forks one child per forbidden access (a wild address outside
// every window, a write to rodata, an overrun into guard-above, an underrun into guard-below), each with
// the crash report enabled and its stderr in a pipe, and checks that the child died of SIGSEGV and that
// the report names the cause: no mapping for the wild address, the read-only window, the guard window.
//
//   faultline_vm_dispatcher_demo [--backend signals|userfaultfd|auto]
//
// --backend picks the backend of the windows that have a choice (anon, initialised, external, rodata;
// guard windows and adopted memory are always served by signals); userfaultfd falls back, saying so,
// when the kernel refuses it (try FAULTLINE_KERNEL=none). Prints one line per window with the backend it
// got and why, one line per client, one per crash check, and "vm: every thread saw what its windows
// promise" (exit 0), or every difference (exit 1).
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "faultline/faultline.hpp"

namespace {

const std::size_t kPage = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
constexpr unsigned kClients = 4;
constexpr std::size_t kAnonPages = 64;  // 16 per client
constexpr std::size_t kInitPages = 128;
constexpr std::size_t kExternalPages = 32;
constexpr std::size_t kRodataPages = 8;
constexpr std::size_t kBufferPages = kClients;  // one page-sized slice per client

// ---------------------------------------------------------------------------------------------------
// What the windows promise. The functions that fill a window and the clients that check it share these.

constexpr std::uint64_t kInitTag = 0x1417, kRodataTag = 0x0d47a, kExternalTag = 0xe87;

// The 8-byte word at byte `offset` of a window with content `tag` (splitmix64: never all zeros in practice,
// so a zero page cannot pass for content).
std::uint64_t word_of(std::uint64_t tag, std::size_t offset) {
  std::uint64_t z = tag * 0x9e3779b97f4a7c15ull + offset;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Writes the words of [offset, offset + length) of window `tag` at `dest`. Async-signal-safe.
void fill_words(std::byte* dest, std::size_t offset, std::size_t length, std::uint64_t tag) {
  auto* w = reinterpret_cast<std::uint64_t*>(dest);
  for (std::size_t i = 0; i < length / 8; ++i) w[i] = word_of(tag, offset + i * 8);
}

// The external pager's page `n`: a line naming the page and the process that served it, then words.
std::string external_header(std::size_t n, long pager_pid) {
  char line[64];
  std::snprintf(line, sizeof line, "external page %zu, served by process %ld", n, pager_pid);
  return line;
}
void external_page(std::byte* dest, std::size_t n, long pager_pid) {
  fill_words(dest, n * kPage, kPage, kExternalTag);
  const std::string h = external_header(n, pager_pid);
  std::memcpy(dest, h.c_str(), h.size() + 1);
}

// A client's stamp in its own anon pages, and its bytes in the untrusted buffer.
std::uint64_t stamp(unsigned client, std::size_t page, std::size_t word) {
  return 0xa000000000000000ull | std::uint64_t{client} << 40 | page << 16 | word;
}
unsigned char buffer_byte(unsigned client, std::size_t i) {
  return static_cast<unsigned char>(client * 61 + i * 7 + 1);
}

long this_tid() { return static_cast<long>(gettid()); }

// A small set of thread ids, filled lock-free (fill functions may run in signal handlers).
struct TidSet {
  std::atomic<long> slot[16] = {};
  void add(long tid) {
    for (auto& s : slot) {
      long seen = 0;
      if (s.compare_exchange_strong(seen, tid) || seen == tid) return;  // taken now, or there already
    }
  }
  std::vector<long> all() const {
    std::vector<long> v;
    for (const auto& s : slot) {
      if (long t = s.load(); t != 0) v.push_back(t);
    }
    return v;
  }
};

// ---------------------------------------------------------------------------------------------------
// The fillers.

// 1. The content initialiser: the fill function of the "initialised" window. It runs on the Pager's own
// thread as ordinary code (it could read a file or ask a server) while the faulting client waits.
struct FillLog {
  std::atomic<std::uint64_t> fills{0}, pages{0};
  TidSet threads;
};
FillLog g_initialiser, g_rodata;

// Fills a request's pages with `tag`'s words and records the fill in `log`.
faultline::FillStatus fill_and_log(const faultline::FillRequest& req, std::uint64_t tag, FillLog& log) {
  fill_words(req.dest, req.offset, req.length, tag);
  log.fills.fetch_add(1);
  log.pages.fetch_add(req.length / kPage);
  log.threads.add(this_tid());
  return {};
}

faultline::FillStatus initialise(const faultline::FillRequest& req, void*) {
  return fill_and_log(req, kInitTag, g_initialiser);
}

// 2. The read-only constants: a provider. On the signal backend it runs in the faulting client's signal
// handler, so it sticks to arithmetic and atomics (async-signal-safe); on userfaultfd, faultline's
// handler thread runs it.
faultline::FillStatus constants(const faultline::FillRequest& req, void*) {
  return fill_and_log(req, kRodataTag, g_rodata);
}

// 3. The external pager: a process of its own. It speaks faultline's remote pager protocol (it receives
// the region's userfaultfd and copies pages in itself), or, when the program has no userfaultfd, a
// two-message relay protocol: {offset, length} in, the bytes out.
enum class PagerProtocol { remote, relay };
std::atomic<std::uint64_t> g_served_pages{0};  // in the pager process

faultline::FillStatus serve_external(const faultline::FillRequest& req, void*) {
  for (std::size_t i = 0; i < req.length / kPage; ++i) {
    external_page(req.dest + i * kPage, req.offset / kPage + i, static_cast<long>(getpid()));
  }
  g_served_pages.fetch_add(req.length / kPage);
  return {};
}

struct RelayRequest {
  std::uint64_t offset, length;
};

bool read_all(int fd, void* p, std::size_t n) {
  auto* b = static_cast<char*>(p);
  while (n > 0) {
    const ssize_t r = read(fd, b, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    b += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}
bool write_all(int fd, const void* p, std::size_t n) {
  const auto* b = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t r = send(fd, b, n, MSG_NOSIGNAL);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    b += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

// The pager process's main: serves until the program closes its end of the socket.
[[noreturn]] void external_pager_main(int sock, PagerProtocol protocol) {
  const char* how = "faultline's remote pager protocol";
  if (protocol == PagerProtocol::remote) {
    auto region = faultline::remote_pager::receive(sock);
    if (!region) {
      std::fprintf(stderr, "vm: pager process: receive: %s\n", region.error().message().c_str());
      _exit(2);
    }
    if (auto r = region->serve(serve_external, nullptr); !r) {
      std::fprintf(stderr, "vm: pager process: serve: %s\n", r.error().message().c_str());
      _exit(3);
    }
  } else {
    how = "the socket relay";
    std::vector<std::byte> out;
    RelayRequest q{};
    while (read_all(sock, &q, sizeof q)) {
      if (q.length == 0 || q.length % kPage != 0 || q.offset % kPage != 0 || q.length > 512 * kPage) _exit(4);
      out.resize(q.length);
      faultline::FillRequest req{};
      req.offset = q.offset;
      req.length = q.length;
      req.dest = out.data();
      (void)serve_external(req, nullptr);
      if (!write_all(sock, out.data(), out.size())) _exit(5);
    }
  }
  std::printf("vm: pager process %ld served %llu pages over %s; the program hung up, it exits\n",
              static_cast<long>(getpid()), static_cast<unsigned long long>(g_served_pages.load()), how);
  std::fflush(stdout);
  _exit(0);
}

// The relay's program side: a local Pager thread forwards each fill to the pager process and waits.
struct Relay {
  int sock = -1;
  std::mutex lock;  // one request in flight on the socket
};
faultline::FillStatus relay_fill(const faultline::FillRequest& req, void* data) {
  auto* relay = static_cast<Relay*>(data);
  std::lock_guard hold(relay->lock);
  const RelayRequest q{req.offset, req.length};
  if (!write_all(relay->sock, &q, sizeof q)) return {EPIPE, "the pager process went away"};
  if (!read_all(relay->sock, req.dest, req.length)) return {EIO, "the pager process did not answer"};
  return {};
}

// ---------------------------------------------------------------------------------------------------
// Setting up windows.

std::string perms_text(unsigned p) {
  return {(p & faultline::perm_read) ? 'r' : '-', (p & faultline::perm_write) ? 'w' : '-',
          (p & faultline::perm_exec) ? 'x' : '-'};
}

// One trace line per window: where it is, its policy and permissions, the backend it got and why.
void print_window(const faultline::Region& r) {
  const faultline::RegionInfo i = r.info();
  // backend_reason() names the backend first ("userfaultfd (handler thread)", "signals (requested)").
  const std::string backend = faultline::backend_name(r.backend());
  std::string why = r.backend_reason();
  if (why.rfind(backend, 0) != 0) why = backend + " (" + why + ")";
  std::printf("vm: window %-13s %#14lx +%3zu pages  %-9s %s  %s\n", ("'" + std::string(i.name) + "'").c_str(),
              static_cast<unsigned long>(i.base), i.size / kPage, faultline::policy_name(i.policy),
              perms_text(i.perms).c_str(), why.c_str());
}

// Reserves a window; when userfaultfd was asked for and refused, says so and takes the automatic choice.
std::optional<faultline::Region> open_window(faultline::RegionOptions o, std::size_t pages) {
  auto r = faultline::reserve_region(pages * kPage, o);
  if (!r && o.backend == faultline::Backend::userfaultfd) {
    std::printf("vm: window '%s': userfaultfd refused (%s); falling back to the automatic choice\n", o.name.c_str(),
                r.error().message().c_str());
    o.backend = faultline::Backend::automatic;
    r = faultline::reserve_region(pages * kPage, o);
  }
  if (!r) {
    std::fprintf(stderr, "vm: window '%s': %s\n", o.name.c_str(), r.error().message().c_str());
    return std::nullopt;
  }
  print_window(*r);
  return std::move(*r);
}

// Registers [base + first, base + first + pages) of a mapping we made ourselves as a window.
std::optional<faultline::Region> adopt_window(unsigned char* base, std::size_t first, std::size_t pages,
                                              const char* name, faultline::Policy policy) {
  faultline::RegionOptions o;
  o.name = name;
  o.policy = policy;
  if (policy == faultline::Policy::guard) o.perms = faultline::perm_none;  // nothing may touch it
  auto r = faultline::adopt_region(base + first * kPage, pages * kPage, o);
  if (!r) {
    std::fprintf(stderr, "vm: window '%s': %s\n", name, r.error().message().c_str());
    return std::nullopt;
  }
  print_window(*r);
  return std::move(*r);
}

// ---------------------------------------------------------------------------------------------------
// The clients.

enum WindowId { kAnon, kInit, kExternal, kRodata, kBuffer, kWindowCount };
const char* const kWindowName[kWindowCount] = {"anon", "initialised", "external", "rodata", "buffer"};

// How many values each client checks in each window (the script below, counted): a client that skipped
// part of its script fails as surely as one that read a wrong value.
constexpr std::size_t kAnonPerClient = kAnonPages / kClients;
const std::size_t kExpectedChecks[kWindowCount] = {
    kAnonPerClient * 2 * 2 + (kAnonPages - kAnonPerClient) * 2,  // own: zero, then stamp; others' stamps
    kInitPages * 3,                                              // three words of every page
    kExternalPages * 2,                                          // the header line and the last word
    kRodataPages * 4,                                            // four words of every page
    kBufferPages * kPage,                                        // every byte: own slice, then the others'
};

// Where each window is, as the clients see it.
struct AddressSpace {
  unsigned char* anon;
  const unsigned char* init;
  const unsigned char* external;
  const unsigned char* rodata;
  unsigned char* buffer;
  long pager_pid;
};

// What one client saw in one window.
struct Tally {
  std::size_t checked = 0, wrong = 0;
  std::string first_wrong;
};

std::uint64_t load(const unsigned char* p) { return *reinterpret_cast<const volatile std::uint64_t*>(p); }
void store(unsigned char* p, std::uint64_t v) { *reinterpret_cast<volatile std::uint64_t*>(p) = v; }

struct Client {
  unsigned index = 0;
  long tid = 0;
  bool attached = false;
  Tally seen[kWindowCount];

  void expect_word(WindowId w, const unsigned char* base, std::size_t offset, std::uint64_t want) {
    const std::uint64_t got = load(base + offset);
    note(w, got == want, [&] {
      char b[128];
      std::snprintf(b, sizeof b, "offset %#zx (page %zu): read %#llx, expected %#llx", offset, offset / kPage,
                    static_cast<unsigned long long>(got), static_cast<unsigned long long>(want));
      return std::string(b);
    });
  }
  template <class Describe>
  void note(WindowId w, bool ok, Describe describe) {
    Tally& t = seen[w];
    ++t.checked;
    if (ok) return;
    if (t.wrong++ == 0) t.first_wrong = describe();
  }

  // The script. Every client runs the same one, starting at a different page, so that clients fault on
  // the same pages at the same time (faultline gives two faults on one page one fill).
  void run(const AddressSpace& as, std::barrier<>& sync) {
    tid = this_tid();
    auto attachment = faultline::attach_thread();  // an alternate signal stack, as every faulting thread should
    attached = attachment.ok();
    const std::size_t last_word = kPage - 8;
    sync.arrive_and_wait();  // all start together

    // anon: my own pages are zeros until I write them; then they hold what I wrote.
    for (std::size_t p = index * kAnonPerClient; p < (index + 1) * kAnonPerClient; ++p) {
      for (std::size_t off : {std::size_t{0}, last_word}) {
        expect_word(kAnon, as.anon, p * kPage + off, 0);
        store(as.anon + p * kPage + off, stamp(index, p, off));
        expect_word(kAnon, as.anon, p * kPage + off, stamp(index, p, off));
      }
    }
    // initialised: three words of every page, as the content initialiser made them.
    for (std::size_t i = 0; i < kInitPages; ++i) {
      const std::size_t p = (i + index * kInitPages / kClients) % kInitPages;
      for (std::size_t off : {std::size_t{0}, kPage / 2, last_word}) {
        expect_word(kInit, as.init, p * kPage + off, word_of(kInitTag, p * kPage + off));
      }
    }
    // external: every page starts with a line naming its page number and the pager process.
    for (std::size_t i = 0; i < kExternalPages; ++i) {
      const std::size_t p = (i + index * kExternalPages / kClients) % kExternalPages;
      const std::string want = external_header(p, as.pager_pid);
      char got[64] = {};
      std::memcpy(got, as.external + p * kPage, want.size());
      note(kExternal, want == got,
           [&] { return "page " + std::to_string(p) + " begins \"" + std::string(got) + "\""; });
      expect_word(kExternal, as.external, p * kPage + last_word, word_of(kExternalTag, p * kPage + last_word));
    }
    // rodata: readable constants (writing is the crash checks' business).
    for (std::size_t i = 0; i < kRodataPages; ++i) {
      const std::size_t p = (i + index) % kRodataPages;
      for (std::size_t off : {std::size_t{0}, std::size_t{8}, kPage / 2, last_word}) {
        expect_word(kRodata, as.rodata, p * kPage + off, word_of(kRodataTag, p * kPage + off));
      }
    }
    // buffer: I fill my slice, right up to its last byte (the last client's ends where guard-above begins).
    unsigned char* mine = as.buffer + index * kPage;
    for (std::size_t i = 0; i < kPage; ++i) mine[i] = buffer_byte(index, i);
    check_slice(as, index);

    sync.arrive_and_wait();  // everyone has written: now read what the others wrote

    // One address space: every client sees every other client's writes.
    for (unsigned other = 0; other < kClients; ++other) {
      if (other == index) continue;
      for (std::size_t p = other * kAnonPerClient; p < (other + 1) * kAnonPerClient; ++p) {
        for (std::size_t off : {std::size_t{0}, last_word}) {
          expect_word(kAnon, as.anon, p * kPage + off, stamp(other, p, off));
        }
      }
      check_slice(as, other);
    }
  }

  void check_slice(const AddressSpace& as, unsigned owner) {
    const volatile unsigned char* s = as.buffer + owner * kPage;
    for (std::size_t i = 0; i < kPage; ++i) {
      const unsigned char got = s[i];
      note(kBuffer, got == buffer_byte(owner, i), [&] {
        return "byte " + std::to_string(owner * kPage + i) + " of client " + std::to_string(owner) + "'s slice: " +
               std::to_string(got) + ", expected " + std::to_string(buffer_byte(owner, i));
      });
    }
  }
};

// ---------------------------------------------------------------------------------------------------
// The crash checks: a forbidden access in a forked child, with the report on, stderr in a pipe.

struct CrashCheck {
  const char* what;                      // the access, for the trace
  int signal;                            // how the child must die
  std::vector<std::string> must_say;     // in the report
  std::vector<std::string> must_not_say;
  std::function<void()> access;          // runs in the child; must not come back
};

std::string hex(const void* p) {
  char b[32];
  std::snprintf(b, sizeof b, "%p", p);
  return b;
}

// The report's line that contains `key`, without its end of line.
std::string line_with(const std::string& text, const std::string& key) {
  const std::size_t at = text.find(key);
  if (at == std::string::npos) return "";
  const std::size_t begin = text.rfind('\n', at) == std::string::npos ? 0 : text.rfind('\n', at) + 1;
  const std::size_t end = text.find('\n', at);
  return text.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

void run_crash_check(const CrashCheck& c, std::vector<std::string>* problems) {
  int fds[2];
  if (pipe(fds) != 0) {
    problems->push_back(std::string("pipe: ") + std::strerror(errno));
    return;
  }
  std::fflush(nullptr);  // nothing buffered may be written twice
  const pid_t pid = fork();
  if (pid < 0) {
    problems->push_back(std::string("fork: ") + std::strerror(errno));
    return;
  }
  if (pid == 0) {  // the child: report to stderr, which is the pipe
    close(fds[0]);
    dup2(fds[1], 2);
    close(fds[1]);
    const rlimit no_core{0, 0};
    setrlimit(RLIMIT_CORE, &no_core);  // a crash on purpose leaves no core file
    alarm(10);                         // a hang would end as SIGALRM, which the check rejects
    faultline::report::Options o;
    o.color = faultline::report::Color::never;
    if (!faultline::report::enable(o)) _exit(90);
    c.access();
    _exit(91);  // the access was resolved: it must not have been
  }
  close(fds[1]);
  std::string report;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    report.append(buf, static_cast<std::size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }

  std::vector<std::string> wrong;
  if (!WIFSIGNALED(status) || WTERMSIG(status) != c.signal) {
    wrong.push_back(std::string("the child should have died of SIG") + sigabbrev_np(c.signal) + ", but it " +
                    (WIFSIGNALED(status) ? std::string("died of SIG") + sigabbrev_np(WTERMSIG(status))
                                         : "exited with status " + std::to_string(WEXITSTATUS(status))));
  }
  for (const std::string& s : c.must_say) {
    if (report.find(s) == std::string::npos) wrong.push_back("the report does not say \"" + s + "\"");
  }
  for (const std::string& s : c.must_not_say) {
    if (report.find(s) != std::string::npos) wrong.push_back("the report says \"" + s + "\"");
  }
  if (wrong.empty()) {
    // The line that names the cause: the region's, or the mapping's when no region holds the address.
    std::string cause = line_with(report, "region    ");
    if (cause.empty()) cause = line_with(report, "mapping   ");
    std::printf("vm: child %d, %s: killed by SIG%s, report: %s\n", static_cast<int>(pid), c.what,
                sigabbrev_np(WTERMSIG(status)), cause.c_str());
    return;
  }
  for (const std::string& w : wrong) problems->push_back(std::string(c.what) + ": " + w);
  std::printf("vm: child %d, %s: WRONG; its report:\n%s\n", static_cast<int>(pid), c.what, report.c_str());
}

std::string thread_name(long tid) {
  std::ifstream comm("/proc/self/task/" + std::to_string(tid) + "/comm");
  std::string name;
  std::getline(comm, name);
  return name;
}

int usage(const char* argv0) {
  std::fprintf(stderr, "usage: %s [--backend signals|userfaultfd|auto]\n", argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  faultline::print_stats();  // each region's counters on stderr as it ends, and a summary at exit
  // --- The command line: which backend the windows that can choose should have.
  faultline::Backend want = faultline::Backend::automatic;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    std::string value;
    if (a == "--backend" && i + 1 < argc) value = argv[++i];
    else if (a.rfind("--backend=", 0) == 0) value = a.substr(10);
    else return usage(argv[0]);
    if (value == "signals") want = faultline::Backend::signals;
    else if (value == "userfaultfd") want = faultline::Backend::userfaultfd;
    else if (value == "auto" || value == "automatic") want = faultline::Backend::automatic;
    else return usage(argv[0]);
  }

  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // the trace interleaves with the pager process's line
  if (auto r = faultline::install(); !r) {
    std::fprintf(stderr, "install: %s\n", r.error().message().c_str());
    return 1;
  }
  const auto uffd = faultline::userfaultfd_available();
  std::printf("vm: backend asked for: %s; userfaultfd %s%s\n",
              want == faultline::Backend::automatic ? "auto" : faultline::backend_name(want),
              uffd ? "available" : "unavailable: ", uffd ? "" : uffd.error().message().c_str());
  if (want == faultline::Backend::userfaultfd && !uffd) {
    std::printf("vm: falling back to the automatic choice for every window (signals)\n");
    want = faultline::Backend::automatic;
  }
  std::vector<std::string> problems;

  // --- The external pager process, first, before the windows and their threads exist. Which protocol it
  // speaks depends on whether a remote pager region can be had here: explain_backend() says, reserving
  // nothing.
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    std::perror("socketpair");
    return 1;
  }
  faultline::RegionOptions ext;
  ext.name = "external";
  ext.policy = faultline::Policy::pager;
  ext.backend = want;
  ext.remote_pager_socket = sv[0];
  ext.fill_timeout = std::chrono::milliseconds(5000);
  PagerProtocol protocol = PagerProtocol::remote;
  if (auto choice = faultline::explain_backend(ext); !choice) {
    std::printf("vm: window 'external': no remote pager here (%s); a local Pager thread relays its fills to "
                "the pager process instead\n",
                choice.error().message().c_str());
    protocol = PagerProtocol::relay;
  }
  std::fflush(nullptr);
  const pid_t pager_pid = fork();
  if (pager_pid < 0) {
    std::perror("fork");
    return 1;
  }
  if (pager_pid == 0) {
    close(sv[0]);
    external_pager_main(sv[1], protocol);
  }
  close(sv[1]);

  // --- The windows. Each reservation prints a line: where, which policy, which backend and why.
  // anon: empty, zero-filled on demand, 4 pages per fault.
  faultline::RegionOptions o;
  o.name = "anon";
  o.policy = faultline::Policy::zero_fill;
  o.fault_around = 4;
  o.backend = want;
  auto anon = open_window(o, kAnonPages);

  // initialised: a pager region whose fills are answered by the content-initialiser thread.
  auto initialiser = faultline::Pager::start({.name = "content-init", .threads = 1});
  if (!initialiser) {
    std::fprintf(stderr, "Pager::start: %s\n", initialiser.error().message().c_str());
    return 1;
  }
  o = {};
  o.name = "initialised";
  o.policy = faultline::Policy::pager;
  o.fill = initialise;
  o.pager = *initialiser;
  o.fault_around = 8;
  o.backend = want;
  auto init = open_window(o, kInitPages);

  // external: the pager process serves it, directly (remote pager) or through the relay.
  Relay relay;
  relay.sock = sv[0];
  std::optional<faultline::Region> external;
  if (protocol == PagerProtocol::remote) {
    external = open_window(ext, kExternalPages);
  } else {
    auto relay_pager = faultline::Pager::start({.name = "pager-relay", .threads = 1});
    if (!relay_pager) {
      std::fprintf(stderr, "Pager::start: %s\n", relay_pager.error().message().c_str());
      return 1;
    }
    ext.remote_pager_socket = -1;
    ext.fill = relay_fill;
    ext.fill_data = &relay;
    ext.pager = *relay_pager;
    ext.backend = want == faultline::Backend::userfaultfd ? faultline::Backend::automatic : want;
    external = open_window(ext, kExternalPages);
  }

  // rodata: read-only constants, filled by a provider on first read.
  o = {};
  o.name = "rodata";
  o.policy = faultline::Policy::provider;
  o.perms = faultline::perm_read;
  o.fill = constants;
  o.backend = want;
  auto rodata = open_window(o, kRodataPages);

  // guard-below | buffer | guard-above: one mapping of our own, cut into three adjacent windows.
  const std::size_t span = (1 + kBufferPages + 1) * kPage;
  void* mapped = mmap(nullptr, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mapped == MAP_FAILED) {
    std::perror("mmap");
    return 1;
  }
  auto* untrusted = static_cast<unsigned char*>(mapped);
  auto guard_below = adopt_window(untrusted, 0, 1, "guard-below", faultline::Policy::guard);
  auto buffer = adopt_window(untrusted, 1, kBufferPages, "buffer", faultline::Policy::zero_fill);
  auto guard_above = adopt_window(untrusted, 1 + kBufferPages, 1, "guard-above", faultline::Policy::guard);

  if (!anon || !init || !external || !rodata || !guard_below || !buffer || !guard_above) {
    kill(pager_pid, SIGKILL);
    waitpid(pager_pid, nullptr, 0);
    return 1;
  }

  // Permissions are checked before anything faults, too: prefault() for a write into rodata is refused.
  if (auto r = faultline::prefault(rodata->data(), kPage, faultline::Access::write); r) {
    problems.push_back("prefault() for a write into 'rodata' was accepted");
  } else {
    std::printf("vm: window 'rodata': a write is refused before it happens: %s\n", r.error().message().c_str());
  }

  // --- The clients.
  const AddressSpace as{static_cast<unsigned char*>(anon->data()),
                        static_cast<const unsigned char*>(init->data()),
                        static_cast<const unsigned char*>(external->data()),
                        static_cast<const unsigned char*>(rodata->data()),
                        static_cast<unsigned char*>(buffer->data()),
                        static_cast<long>(pager_pid)};
  std::vector<Client> clients(kClients);
  {
    std::barrier<> sync(kClients);
    std::vector<std::thread> threads;
    for (unsigned c = 0; c < kClients; ++c) {
      clients[c].index = c;
      threads.emplace_back([&, c] { clients[c].run(as, sync); });
    }
    for (auto& t : threads) t.join();
  }

  // What each client saw, window by window, against what its windows promise.
  std::vector<long> client_tids;
  for (const Client& c : clients) client_tids.push_back(c.tid);
  auto is_client = [&](long tid) {
    return std::find(client_tids.begin(), client_tids.end(), tid) != client_tids.end();
  };
  for (const Client& c : clients) {
    std::string line;
    bool ok = c.attached;
    if (!c.attached) problems.push_back("client " + std::to_string(c.index) + " could not attach");
    for (int w = 0; w < kWindowCount; ++w) {
      const Tally& t = c.seen[w];
      line += std::string(w == 0 ? "" : ", ") + kWindowName[w] + " " + std::to_string(t.checked - t.wrong) + "/" +
              std::to_string(kExpectedChecks[w]);
      if (t.wrong != 0) {
        ok = false;
        problems.push_back("client " + std::to_string(c.index) + ", window '" + kWindowName[w] + "': " +
                           std::to_string(t.wrong) + " wrong values, the first at " + t.first_wrong);
      }
      if (t.checked != kExpectedChecks[w]) {
        ok = false;
        problems.push_back("client " + std::to_string(c.index) + ", window '" + kWindowName[w] + "': checked " +
                           std::to_string(t.checked) + " values, the script has " + std::to_string(kExpectedChecks[w]));
      }
    }
    std::printf("vm: client %u (thread %ld): %s: %s\n", c.index, c.tid, line.c_str(), ok ? "as promised" : "WRONG");
  }

  // Who answered the faults: the content initialiser's fills ran on its own thread, never on a client.
  const std::vector<long> init_threads = g_initialiser.threads.all();
  std::string names;
  for (long t : init_threads) {
    names += (names.empty() ? "" : ", ") + std::to_string(t) + " \"" + thread_name(t) + "\"";
    if (is_client(t)) problems.push_back("a fill of 'initialised' ran on client thread " + std::to_string(t));
  }
  const faultline::PagerStats ps = initialiser->stats();
  std::printf("vm: window 'initialised': %llu fills, %llu pages (of %zu), on thread %s; "
              "pager requests %llu, failed %llu\n",
              static_cast<unsigned long long>(g_initialiser.fills.load()),
              static_cast<unsigned long long>(g_initialiser.pages.load()), kInitPages, names.c_str(),
              static_cast<unsigned long long>(ps.requests), static_cast<unsigned long long>(ps.failed));
  if (init_threads.empty() || g_initialiser.pages.load() < kInitPages) {
    problems.push_back("the content initialiser filled " + std::to_string(g_initialiser.pages.load()) + " pages of " +
                       std::to_string(kInitPages));
  }
  if (ps.failed != 0) problems.push_back("the content initialiser's pager reported failed fills");
  std::size_t on_clients = 0;
  for (long t : g_rodata.threads.all()) on_clients += is_client(t) ? 1 : 0;
  std::printf("vm: window 'rodata': %llu fills, %llu pages (of %zu), %s\n",
              static_cast<unsigned long long>(g_rodata.fills.load()),
              static_cast<unsigned long long>(g_rodata.pages.load()), kRodataPages,
              on_clients != 0 ? "run in the faulting clients' own signal handlers"
                              : "run on faultline's handler thread");

  // --- The forbidden accesses, each in a child of its own.
  // The wild pointer: a small integer taken for an address. Nothing is ever mapped that low (below
  // vm.mmap_min_addr), so the access meets no window and no mapping. (A hole unmapped for the purpose
  // would not do: the report's own allocations may map memory there before the access is re-executed.)
  auto* const wild_byte = reinterpret_cast<unsigned char*>(std::uintptr_t{0x3040});
  unsigned char* const rodata_byte = static_cast<unsigned char*>(rodata->data()) + 3 * kPage + 16;
  unsigned char* const buffer_start = static_cast<unsigned char*>(buffer->data());
  const std::vector<CrashCheck> checks = {
      {"a read outside every window",
       SIGSEGV,
       {"address   " + hex(wild_byte), "none (no mapping holds this address)"},
       {"region    "},
       [=] { (void)*static_cast<volatile unsigned char*>(wild_byte); }},
      {"a write to the read-only window",
       SIGSEGV,
       {"address   " + hex(rodata_byte), "access write", "region    'rodata'", "perms r--"},
       {},
       [=] { *static_cast<volatile unsigned char*>(rodata_byte) = 1; }},
      {"an overrun of the untrusted buffer",
       SIGSEGV,
       {"address   " + hex(buffer_start + kBufferPages * kPage), "region    'guard-above'", "policy guard"},
       {},
       [=] {
         // Untrusted code copying one byte too many: everything up to the buffer's end lands, the next
         // byte is in guard-above.
         volatile unsigned char* p = buffer_start;
         for (std::size_t i = 0; i <= kBufferPages * kPage; ++i) p[i] = 'x';
       }},
      {"an underrun of the untrusted buffer",
       SIGSEGV,
       {"address   " + hex(buffer_start - 1), "region    'guard-below'", "policy guard"},
       {},
       [=] {
         volatile unsigned char* p = buffer_start;
         for (std::ptrdiff_t i = 100; i >= -1; --i) p[i] = 'y';
       }},
  };
  for (const CrashCheck& c : checks) run_crash_check(c, &problems);

  // --- Dismissing the external pager: shut down our side of the socket (the pager sees the end of its
  // requests and exits), wait for it, then close the window. (Closing the window first works too: faultline
  // takes the range out of the userfaultfd the pager holds a copy of before unmapping it.)
  shutdown(sv[0], SHUT_WR);
  int pager_status = 0;
  while (waitpid(pager_pid, &pager_status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(pager_status) || WEXITSTATUS(pager_status) != 0) {
    problems.push_back("the pager process ended with status " + std::to_string(pager_status));
  }
  external.reset();
  close(sv[0]);
  guard_below.reset();
  buffer.reset();
  guard_above.reset();
  munmap(mapped, span);

  if (!problems.empty()) {
    for (const std::string& p : problems) std::printf("vm: MISMATCH: %s\n", p.c_str());
    return 1;
  }
  std::printf("vm: every thread saw what its windows promise\n");
  return 0;
}
