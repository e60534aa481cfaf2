/* tests/c/abi_layout.c: prints the size and alignment of every struct faultline.h defines, for
   scripts/check-abi.py (the ABI the shared library promises: see the README's "ABI"). */
#include <stdalign.h>
#include <stdio.h>

#include "faultline/faultline.h"

#define LAYOUT(T) printf("layout %s %zu %zu\n", #T, sizeof(T), alignof(T))

int main(void) {
  LAYOUT(fl_error);
  LAYOUT(fl_handler_id);
  LAYOUT(fl_counters);
  LAYOUT(fl_region_info);
  LAYOUT(fl_fill_request);
  LAYOUT(fl_region_options);
  LAYOUT(fl_region_stats);
  LAYOUT(fl_thread_stats);
  return 0;
}
