// tools/faultline/catch.cpp: `faultline catch [--fd N] [--no-color] -- PROGRAM ARGS...`
//
// Runs PROGRAM with libfaultline_catch.so preloaded (the crash report, chaining to the program's own
// handlers) and ends as it ended: the same exit status, or killed by the same signal (without a core
// dump of its own; the program's is the one that matters).
#include <sys/resource.h>
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

}  // namespace

int run_catch(const CatchArgs& args) {
  if (args.command.empty()) {
    std::fprintf(stderr, "faultline catch: no program given (faultline catch [--fd N] [--no-color] -- PROGRAM ARGS...)\n");
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
  setenv("FAULTLINE_CATCH_FD", std::to_string(args.fd).c_str(), 1);
  if (args.no_color) setenv("FAULTLINE_CATCH_COLOR", "0", 1);
  else unsetenv("FAULTLINE_CATCH_COLOR");

  std::vector<char*> argv;
  for (const std::string& a : args.command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    std::fprintf(stderr, "faultline catch: fork: %s\n", std::strerror(errno));
    return 2;
  }
  if (pid == 0) {
    execvp(argv[0], argv.data());
    std::fprintf(stderr, "faultline catch: cannot run %s: %s\n", argv[0], std::strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
  }
  // Like a shell: keyboard signals go to the program, which decides; we wait for it.
  std::signal(SIGINT, SIG_IGN);
  std::signal(SIGQUIT, SIG_IGN);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      std::fprintf(stderr, "faultline catch: waitpid: %s\n", std::strerror(errno));
      return 2;
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
