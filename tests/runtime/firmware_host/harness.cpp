// Runs rover_bridge.ino on the host. stdin, one record per line:
//   T <ms>       set millis() and run loop()
//   W <hex>      append the bytes to the serial input and run loop()
// After setup() and after each record it prints what the sketch sent ("TX <line>") and
// then "OUT <steering_us> <esc_us>".
#include <iostream>
#include <sstream>
#include <string>

#include "Arduino.h"
#include "Servo.h"

HostSerial Serial;
static unsigned long nowMs = 0;
unsigned long millis() { return nowMs; }

void setup();
void loop();
extern Servo steeringServo;
extern Servo esc;

static void flush() {
  size_t start = 0, nl;
  while ((nl = Serial.tx.find('\n', start)) != std::string::npos) {
    std::cout << "TX " << Serial.tx.substr(start, nl - start) << "\n";
    start = nl + 1;
  }
  Serial.tx.erase(0, start);
  std::cout << "OUT " << steeringServo.us << " " << esc.us << "\n";
}

int main() {
  setup();
  flush();
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string op, arg;
    in >> op >> arg;
    if (op == "T") {
      nowMs = std::stoul(arg);
    } else if (op == "W") {
      for (size_t i = 0; i + 1 < arg.size(); i += 2) Serial.rx += (char)std::stoi(arg.substr(i, 2), nullptr, 16);
    }
    loop();
    flush();
  }
  return 0;
}
