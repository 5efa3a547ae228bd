/* Measures the tensor arena a model needs on TensorFlow Lite Micro: the generated model sources are built with a
 * large MODEL_ARENA_SIZE, the interpreter allocates its tensors, one inference runs on a zero input, and
 * arena_used_bytes() is printed. Built and run by codegen/tflm/runners.py. */
#include <stdio.h>
#include <string.h>

#include "model.h"

static uint8_t input[MODEL_INPUT_SIZE];
static uint8_t output[MODEL_OUTPUT_SIZE];

int main(void) {
  TVMInitialize();
  int32_t rc = TVMExecute(input, output);
  if (rc != 0) {
    printf("error=%ld\n", (long)rc);
    return 2;
  }
  printf("arena_used_bytes=%lu\n", (unsigned long)ModelArenaUsedBytes());
  printf("pointer_bytes=%lu\n", (unsigned long)sizeof(void*));
  return 0;
}
