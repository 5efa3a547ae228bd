/* A minimal stand-in for the Arduino API, enough to compile and run a generated sketch on the host (the build's
 * host check). Serial writes to stdout; loop() runs a fixed number of times (see main.cpp). */
#ifndef HOST_ARDUINO_H_
#define HOST_ARDUINO_H_

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define PROGMEM
#define memcpy_P memcpy
#define DEC 10

/* Flash strings as on the boards (F("...")): on the host they are ordinary strings. */
class __FlashStringHelper;
#define F(string_literal) (reinterpret_cast<const __FlashStringHelper*>(string_literal))

class HostSerial {
 public:
  void begin(unsigned long) {}
  explicit operator bool() const { return true; }
  void print(const char* s) { fputs(s, stdout); }
  void print(const __FlashStringHelper* s) { fputs(reinterpret_cast<const char*>(s), stdout); }
  void print(char c) { fputc(c, stdout); }
  void print(unsigned char v, int base = DEC) { print((unsigned long)v, base); }
  void print(int v, int base = DEC) { print((long)v, base); }
  void print(unsigned int v, int base = DEC) { print((unsigned long)v, base); }
  void print(long v, int base = DEC) { base == DEC ? printf("%ld", v) : printf("%lx", v); }
  void print(unsigned long v, int base = DEC) { base == DEC ? printf("%lu", v) : printf("%lx", v); }
  void print(double v, int digits = 2) { printf("%.*f", digits, v); }
  void println() { fputs("\r\n", stdout); }
  template <typename T> void println(T v) { print(v); println(); }
  void flush() { fflush(stdout); }
};

extern HostSerial Serial;

unsigned long millis(void);
unsigned long micros(void);
void delay(unsigned long ms);
void setup(void);
void loop(void);

#endif  /* HOST_ARDUINO_H_ */
