/* tests/catch/prog_recovers.c: takes three faults its own SIGSEGV handler recovers from (siglongjmp, as
   a runtime's implicit null checks do), then exits 0. */
#include <setjmp.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static sigjmp_buf env;
static void handler(int sig) {
  (void)sig;
  siglongjmp(env, 1);
}
int main(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = handler;
  sigaction(SIGSEGV, &sa, NULL);
  int recovered = 0;
  for (int i = 0; i < 3; ++i) {
    if (sigsetjmp(env, 1) == 0) {
      *(volatile int*)(uintptr_t)(16 + 4 * i) = 1;
    } else {
      ++recovered;
    }
  }
  printf("recovered %d\n", recovered);
  return recovered == 3 ? 0 : 1;
}
