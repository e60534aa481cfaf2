/* tests/catch/prog_own_handler.c: installs its own SIGSEGV handler (with signal()), which reports and
   then dies of the signal the usual way: SIG_DFL and raise. */
#include <signal.h>
#include <string.h>
#include <unistd.h>
static void handler(int sig) {
  static const char msg[] = "own handler ran\n";
  (void)!write(2, msg, sizeof msg - 1);
  signal(sig, SIG_DFL);
  raise(sig);
}
int main(void) {
  signal(SIGSEGV, handler);
  *(volatile int*)8 = 1;
  return 0;
}
