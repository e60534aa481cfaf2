// Installs faultline, resolves one fault, prints "resolved 1".
#include <faultline/faultline.hpp>
#include <sys/mman.h>

#include <cstdio>

static char* page;

int main() {
  page = static_cast<char*>(mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (!faultline::install().ok()) return 1;
  auto id = faultline::add_handler(
      [](faultline::FaultContext&, void*) {
        mprotect(page, 4096, PROT_READ | PROT_WRITE);
        return faultline::Disposition::resolved;
      },
      nullptr);
  if (!id.ok()) return 2;
  page[0] = 1;
  std::printf("resolved %llu\n", static_cast<unsigned long long>(faultline::counters(SIGSEGV).resolved));
  return 0;
}
