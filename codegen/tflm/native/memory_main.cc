/* The TFLM memory report's firmware: the model as the sketch runs it (TVMInitialize, one TVMExecute) and the
 * same printf as baseline_main.c, whose flash and RAM are subtracted. */
#include <stdio.h>

#include "model.h"

static uint8_t input[MODEL_INPUT_SIZE];
static uint8_t output[MODEL_OUTPUT_SIZE];

int main(void) {
  TVMInitialize();
  printf("arena_used_bytes=%lu\n", (unsigned long)(TVMExecute(input, output) == 0 ? ModelArenaUsedBytes() : 0));
  return 0;
}
