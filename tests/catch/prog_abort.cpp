// tests/catch/prog_abort.cpp: ends by SIGABRT the way its argument says: "abort" (abort()), "assert" (a
// failed assert), "throw" (an uncaught std::runtime_error), "throw-int" (an uncaught int).
#undef NDEBUG
#include <cassert>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

int main(int argc, char** argv) {
  const char* how = argc > 1 ? argv[1] : "abort";
  std::printf("about to %s\n", how);
  std::fflush(stdout);
  if (std::strcmp(how, "assert") == 0) assert(argc == 42 && "the answer");
  if (std::strcmp(how, "throw") == 0) throw std::runtime_error("disk on fire");
  if (std::strcmp(how, "throw-int") == 0) throw 7;
  std::abort();
}
