/* tests/consumer_c/main.c: a zero_fill region from C, through an installed faultline. */
#include <faultline/faultline.h>
#include <stdio.h>

int main(void) {
  fl_error err;
  fl_region_options o = fl_region_options_default();
  fl_region* r;
  if (fl_region_reserve(4 * 4096, &o, &r, &err) != 0) {
    fprintf(stderr, "%s\n", err.message);
    return 1;
  }
  char* p = fl_region_data(r);
  p[4096] = 7;
  printf("read %d\n", p[4096] + p[2 * 4096]);
  return fl_region_destroy(r, &err);
}
