/* The memory step's firmware (codegen/backends/tinymaix/runners.py): with -DWITH_MODEL it loads and runs the
 * sketch's TinyMaix model once, without it only prints the same line; the two ELFs' size difference is what the
 * model, TinyMaix's runtime and their buffers cost. */
#include <stdint.h>
#include <stdio.h>

#ifdef WITH_MODEL
#include "model.h"

static uint8_t input[MODEL_INPUT_SIZE];
static uint8_t output[MODEL_OUTPUT_SIZE];
#endif

int main(void) {
  long rc = 0, first = 0;
#ifdef WITH_MODEL
  TVMInitialize();
  rc = (long)TVMExecute(input, output);
  first = (long)output[0];
#endif
  printf("%ld %ld\n", rc, first);
  return 0;
}
