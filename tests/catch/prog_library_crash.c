/* tests/catch/prog_library_crash.c: crashes inside a shared library. */
#include <stdio.h>
void faultline_test_crash_in_library(volatile int* p);
int main(void) {
  puts("about to crash");
  fflush(stdout);
  faultline_test_crash_in_library((volatile int*)16);
  return 0;
}
