/* Measures the tensor arena a model needs on TensorFlow Lite Micro. The generated model sources are built with
 * -DMODEL_ARENA_PROBE and a large MODEL_ARENA_SIZE; one inference on a zero input with the whole arena gives the
 * reference output and arena_used_bytes(), then a bisection finds the smallest arena with which allocation and
 * Invoke succeed and give that same output. Built and run by codegen/tflm/runners.py. */
#include <stdio.h>
#include <string.h>

#include "model.h"

extern "C" int32_t ModelProbeArena(size_t bytes, const uint8_t* input, uint8_t* output);

static uint8_t input[MODEL_INPUT_SIZE];
static uint8_t reference[MODEL_OUTPUT_SIZE];
static uint8_t output[MODEL_OUTPUT_SIZE];

static bool works(size_t bytes) {
  return ModelProbeArena(bytes, input, output) == 0 && memcmp(output, reference, MODEL_OUTPUT_SIZE) == 0;
}

int main(void) {
  TVMInitialize();
  int32_t rc = TVMExecute(input, reference);
  if (rc != 0) {
    printf("error=%ld\n", (long)rc);
    return 2;
  }
  size_t lo = 0, hi = MODEL_ARENA_SIZE;  // lo fails, hi works
  if (!works(hi)) {
    printf("error=probe\n");
    return 3;
  }
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (works(mid)) hi = mid; else lo = mid;
  }
  printf("arena_used_bytes=%lu\n", (unsigned long)ModelArenaUsedBytes());
  printf("arena_min_bytes=%lu\n", (unsigned long)hi);
  printf("pointer_bytes=%lu\n", (unsigned long)sizeof(void*));
  return 0;
}
