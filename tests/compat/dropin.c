/* tests/compat/dropin.c: a program built against the system's libsigsegv (its header, its
 * libsigsegv.so.2). Run with faultline's libsigsegv.so.2 first on LD_LIBRARY_PATH, it must run unchanged
 * on faultline's: it prints which library provides sigsegv_install_handler, then handles a fault. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sigsegv.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

static char* volatile area;
static size_t page;

static int handler(void* addr, int serious) {
  (void)serious;
  if ((char*)addr < area || (char*)addr >= area + page) return 0;
  return mprotect(area, page, PROT_READ | PROT_WRITE) == 0;
}

int main(void) {
  page = (size_t)sysconf(_SC_PAGESIZE);
  Dl_info info;
  if (dladdr((void*)sigsegv_install_handler, &info) == 0) return 2;
  printf("provider: %s\n", info.dli_fname);
  area = mmap(NULL, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (sigsegv_install_handler(handler) != 0) return 3;
  area[1] = 1;
  printf("resolved: %d\n", area[1]);
  return 0;
}
