// tools/faultline/catch.cpp: `faultline catch [--fd N] [--no-color] -- PROGRAM ARGS...`
//
// Runs PROGRAM with libfaultline_catch.so preloaded (the crash report, chaining to the program's own
// handlers) and ends as it ended: the same exit status, or killed by the same signal (without a core
// dump of its own; the program's is the one that matters).
#include <elf.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <fcntl.h>

#include "commands.hpp"

namespace faultline::cli {

namespace {

bool fcntl_ok(int fd) { return fcntl(fd, F_GETFD) != -1; }

std::string exe_dir() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  buf[n] = '\0';
  std::string s = buf;
  return s.substr(0, s.rfind('/'));
}

// The preload library: $FAULTLINE_CATCH_LIB, the installed layout next to this executable, or the
// build tree this executable was built in.
std::string find_library() {
  if (const char* env = std::getenv("FAULTLINE_CATCH_LIB"); env != nullptr && *env != '\0') return env;
  for (const std::string& p : {exe_dir() + "/../" FAULTLINE_LIBDIR "/faultline/libfaultline_catch.so",
                               std::string(FAULTLINE_CATCH_BUILD_PATH)}) {
    if (access(p.c_str(), R_OK) == 0) return p;
  }
  return {};
}

// The file execvp would run for `name` (PATH searched when it has no '/'), or "".
std::string resolve(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  for (std::size_t pos = 0; pos <= dirs.size();) {
    std::size_t colon = dirs.find(':', pos);
    if (colon == std::string::npos) colon = dirs.size();
    std::string dir = dirs.substr(pos, colon - pos);
    pos = colon + 1;
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return {};
}

// Why preloading cannot reach `file`, or "" when it can: a setuid/setgid program (the loader ignores
// LD_PRELOAD for it) or a static one (no loader at all: an ELF file without PT_INTERP).
std::string why_not_preloadable(const std::string& file) {
  struct stat st {};
  if (stat(file.c_str(), &st) != 0) return {};
  // The loader runs such a program in secure mode (AT_SECURE) when it changes the user or group this
  // user would run it as, or when it has file capabilities.
  if ((st.st_mode & S_ISUID) != 0 && st.st_uid != getuid()) return "it is setuid: the loader ignores LD_PRELOAD for it";
  if ((st.st_mode & S_ISGID) != 0 && st.st_gid != getgid()) return "it is setgid: the loader ignores LD_PRELOAD for it";
  if (getxattr(file.c_str(), "security.capability", nullptr, 0) > 0) {
    return "it has file capabilities: the loader ignores LD_PRELOAD for it";
  }
  const int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  Elf64_Ehdr eh{};
  std::string why;
  if (pread(fd, &eh, sizeof eh, 0) == static_cast<ssize_t>(sizeof eh) && std::memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 &&
      eh.e_ident[EI_CLASS] == ELFCLASS64 && eh.e_phentsize == sizeof(Elf64_Phdr)) {
    bool interp = false;
    for (unsigned i = 0; i < eh.e_phnum; ++i) {
      Elf64_Phdr ph{};
      if (pread(fd, &ph, sizeof ph, static_cast<off_t>(eh.e_phoff + i * sizeof ph)) != static_cast<ssize_t>(sizeof ph)) break;
      if (ph.p_type == PT_INTERP) interp = true;
    }
    if (!interp && eh.e_type == ET_EXEC) why = "it is statically linked: there is no loader to preload faultline";
    if (!interp && eh.e_type == ET_DYN && eh.e_entry != 0) {
      why = "it is statically linked (static-pie): there is no loader to preload faultline";
    }
  }
  close(fd);
  return why;
}

// The descriptor the program writes its report to (the pipe to this process): high, out of the way of
// the descriptors programs use.
constexpr int kReportFd = 1000;

// Waits for the program while reading its report from `rd` (a report larger than the pipe's buffer
// must not block it); after it ends, what is left in the pipe (a process it forked may still hold the
// pipe open: nothing is waited for).
bool relay(pid_t pid, int rd, int* status, std::string* report) {
  const long pidfd = syscall(SYS_pidfd_open, pid, 0);
  char buf[4096];
  for (;;) {
    pid_t w;
    while ((w = waitpid(pid, status, WNOHANG)) < 0 && errno == EINTR) {
    }
    if (w < 0) {
      std::fprintf(stderr, "faultline catch: waitpid: %s\n", std::strerror(errno));
      return false;
    }
    if (w == pid) break;
    struct pollfd p[2] = {{rd, POLLIN, 0}, {static_cast<int>(pidfd), POLLIN, 0}};
    // With a pidfd the wait sleeps until the report or the end; without (before Linux 5.3), it looks
    // again every 100 ms.
    if (poll(p, pidfd >= 0 ? 2 : 1, pidfd >= 0 ? -1 : 100) > 0 && (p[0].revents & (POLLIN | POLLHUP)) != 0) {
      const ssize_t n = read(rd, buf, sizeof buf);
      if (n > 0) report->append(buf, static_cast<std::size_t>(n));
    }
  }
  if (pidfd >= 0) close(static_cast<int>(pidfd));
  fcntl(rd, F_SETFL, O_NONBLOCK);
  ssize_t n;
  while ((n = read(rd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) report->append(buf, static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace

int run_catch(const CatchArgs& args) {
  if (args.command.empty()) {
    std::fprintf(stderr, "faultline catch: no program given (faultline catch [--fd N] [--no-color] [--stats] -- PROGRAM ARGS...)\n");
    return 2;
  }
  if (args.fd < 0 || fcntl_ok(args.fd) == false) {
    std::fprintf(stderr, "faultline catch: --fd %d is not an open file descriptor\n", args.fd);
    return 2;
  }
  const std::string lib = find_library();
  if (lib.empty()) {
    std::fprintf(stderr, "faultline catch: libfaultline_catch.so not found (set FAULTLINE_CATCH_LIB)\n");
    return 2;
  }
  std::string preload = lib;
  if (const char* old = std::getenv("LD_PRELOAD"); old != nullptr && *old != '\0') preload += std::string(":") + old;
  setenv("LD_PRELOAD", preload.c_str(), 1);
  // The report comes back through a pipe (descriptor kReportFd in the program), and goes out
  // symbolized (full names, file:line) to --fd once the program has ended. Colour as --fd would get it.
  int report_pipe[2];
  if (pipe2(report_pipe, O_CLOEXEC) != 0) {
    std::fprintf(stderr, "faultline catch: pipe: %s\n", std::strerror(errno));
    return 2;
  }
  setenv("FAULTLINE_CATCH_FD", std::to_string(kReportFd).c_str(), 1);
  const bool color = !args.no_color && isatty(args.fd) && std::getenv("NO_COLOR") == nullptr;
  setenv("FAULTLINE_CATCH_COLOR", color ? "1" : "0", 1);
  if (args.stats) setenv("FAULTLINE_STATS", "1", 1);

  // Where preloading cannot work, say so plainly: the program runs, without a report.
  if (const std::string file = resolve(args.command[0]); !file.empty()) {
    if (const std::string why = why_not_preloadable(file); !why.empty()) {
      std::fprintf(stderr, "faultline catch: %s: %s; it runs without the crash report\n", file.c_str(), why.c_str());
    }
  }
  std::vector<char*> argv;
  for (const std::string& a : args.command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    std::fprintf(stderr, "faultline catch: fork: %s\n", std::strerror(errno));
    return 2;
  }
  if (pid == 0) {
    if (dup2(report_pipe[1], kReportFd) < 0) _exit(126);  // dup2 clears close-on-exec
    execvp(argv[0], argv.data());
    std::fprintf(stderr, "faultline catch: cannot run %s: %s\n", argv[0], std::strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
  }
  // Like a shell: keyboard signals go to the program, which decides; we wait for it.
  std::signal(SIGINT, SIG_IGN);
  std::signal(SIGQUIT, SIG_IGN);
  close(report_pipe[1]);
  int status = 0;
  std::string report;
  if (!relay(pid, report_pipe[0], &status, &report)) return 2;
  close(report_pipe[0]);
  if (!report.empty()) {
    const std::string readable = symbolize_report(report);
    for (std::size_t done = 0; done < readable.size();) {
      const ssize_t n = write(args.fd, readable.data() + done, readable.size() - done);
      if (n <= 0 && errno != EINTR) break;
      if (n > 0) done += static_cast<std::size_t>(n);
    }
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    struct rlimit none {};
    setrlimit(RLIMIT_CORE, &none);  // the program dumped its core already, if it was going to
    std::signal(sig, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, nullptr);
    raise(sig);
    return 128 + sig;
  }
  return 2;
}

}  // namespace faultline::cli
