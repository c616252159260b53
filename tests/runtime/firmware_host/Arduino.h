// Host stand-in for the bits of the Arduino core that rover_bridge.ino uses (tests only).
#pragma once
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <string>

unsigned long millis();

class HostSerial {
 public:
  std::string rx;  // bytes waiting to be read by the sketch
  size_t pos = 0;
  std::string tx;  // bytes the sketch printed
  void begin(long) {}
  int available() { return (int)(rx.size() - pos); }
  int read() { return pos < rx.size() ? (unsigned char)rx[pos++] : -1; }
  void print(const char *s) { tx += s; }
  void print(char c) { tx += c; }
};
extern HostSerial Serial;
