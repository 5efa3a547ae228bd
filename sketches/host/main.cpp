/* Host entry point for a generated sketch: setup(), then loop() HOST_LOOPS times (default 1). */
#include <stdlib.h>
#include <time.h>

#include "Arduino.h"

HostSerial Serial;

unsigned long millis(void) { return (unsigned long)(clock() * 1000.0 / CLOCKS_PER_SEC); }
/* Wall-clock microseconds, as a board's micros() counts: the host check prints the host's inference time. */
unsigned long micros(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (unsigned long)now.tv_sec * 1000000UL + (unsigned long)(now.tv_nsec / 1000);
}
void delay(unsigned long) {}  /* the host check wants results, not real time */

int main(void) {
  const char* loops = getenv("HOST_LOOPS");
  int n = loops ? atoi(loops) : 1;
  setup();
  for (int i = 0; i < n; i++) loop();
  fflush(stdout);
  return 0;
}
