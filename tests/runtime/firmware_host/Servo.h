#pragma once
class Servo {
 public:
  int pin = -1;
  int us = 0;
  void attach(int p) { pin = p; }
  void writeMicroseconds(int v) { us = v; }
};
