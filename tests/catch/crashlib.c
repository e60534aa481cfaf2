/* tests/catch/crashlib.c: a shared library whose function crashes (for `faultline catch`). */
void faultline_test_crash_in_library(volatile int* p);
void faultline_test_crash_in_library(volatile int* p) { *p = 42; }
