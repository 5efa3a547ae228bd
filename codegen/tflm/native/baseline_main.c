/* The TFLM memory report's baseline: the same start-up code and printf as the model probe, without the model.
 * Its flash and RAM are subtracted, so the report shows what TFLM and the model add. */
#include <stdio.h>

int main(void) {
  printf("arena_used_bytes=%lu\n", (unsigned long)0);
  return 0;
}
