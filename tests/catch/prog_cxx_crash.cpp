// tests/catch/prog_cxx_crash.cpp: a C++ crash in a template's member function, in a thread named "poker"
// (built with -g: the report's frames get file:line under `faultline catch` and `faultline symbolize`).
#include <pthread.h>

#include <cstdio>
#include <thread>

namespace app {
template <class T>
struct Box {
  [[gnu::noinline]] void poke(T* p) { *static_cast<volatile T*>(p) = 1; }  // the crash: line 11
};
}  // namespace app

int main() {
  std::printf("about to poke\n");
  std::fflush(stdout);
  std::thread([] {
    pthread_setname_np(pthread_self(), "poker");
    app::Box<int>().poke(nullptr);
  }).join();
}
