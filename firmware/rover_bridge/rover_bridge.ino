// rover_bridge.ino: the Arduino side of edgeact's serial protocol (Pi -> Arduino -> servo + ESC).
//
// Line-based ASCII at 115200 baud; every line ends in *XX, the XOR of the bytes before '*'
// as two upper-case hex digits. Lines with a bad checksum, syntax or range are dropped.
//
//   Pi -> Arduino   A,<steering>,<throttle>,<seq>*XX   integers in [-1000, 1000], seq 0..65535
//                   N*XX                              neutral now (not acknowledged)
//   Arduino -> Pi   READY*XX        once, at boot (the host opening the port reboots Uno/Nano)
//                   ACK,<seq>*XX    for every valid A line
//                   FAILSAFE*XX     once, when the watchdog trips
//
// Watchdog: after the first valid line, if no valid line arrives for WATCHDOG_MS the outputs
// go neutral and FAILSAFE is printed; the next valid line re-arms it. Outputs are neutral at
// boot (which also arms most ESCs). The reference implementation of the protocol is
// src/edgeact/runtime/protocol.py; src/edgeact/runtime/sim_arduino.py behaves like this sketch.
//
// Configure below (or with -D flags): pins, watchdog, pulse widths, trims, reversal.
// Wiring: servo signal -> STEERING_PIN, ESC signal -> ESC_PIN, grounds common with the
// Arduino; power the servo from the ESC's BEC, not from the Arduino's 5 V pin.

#include <Servo.h>

#ifndef STEERING_PIN
#define STEERING_PIN 9
#endif
#ifndef ESC_PIN
#define ESC_PIN 10
#endif
#ifndef BAUD
#define BAUD 115200
#endif
#ifndef WATCHDOG_MS
#define WATCHDOG_MS 250  // neutral when no valid command for this long
#endif
#ifndef PULSE_CENTER_US
#define PULSE_CENTER_US 1500  // neutral pulse width
#endif
#ifndef STEERING_RANGE_US
#define STEERING_RANGE_US 500  // pulse change at full lock (+-1000)
#endif
#ifndef THROTTLE_RANGE_US
#define THROTTLE_RANGE_US 500  // pulse change at full throttle (+-1000)
#endif
#ifndef STEERING_TRIM_US
#define STEERING_TRIM_US 0
#endif
#ifndef STEERING_REVERSED
#define STEERING_REVERSED 0
#endif
#ifndef THROTTLE_REVERSED
#define THROTTLE_REVERSED 0
#endif

#define MAX_LINE 48  // longest valid line is 22 bytes; longer lines are dropped whole

Servo steeringServo;
Servo esc;

static char lineBuf[MAX_LINE + 2];  // + '\r' + '\0'
static uint8_t lineLen = 0;
static bool lineOverflow = false;

static unsigned long lastValidMs = 0;
static bool armed = false;     // watchdog armed after the first valid line
static bool failsafe = false;  // tripped and not yet re-armed

static uint8_t xorOf(const char *s, uint8_t n) {
  uint8_t x = 0;
  for (uint8_t i = 0; i < n; i++) x ^= (uint8_t)s[i];
  return x;
}

static void sendLine(const char *payload) {
  static const char HEX_DIGITS[] = "0123456789ABCDEF";
  uint8_t c = xorOf(payload, (uint8_t)strlen(payload));
  Serial.print(payload);
  Serial.print('*');
  Serial.print(HEX_DIGITS[c >> 4]);
  Serial.print(HEX_DIGITS[c & 0x0F]);
  Serial.print('\n');
}

static int pulseFor(long v, long range, bool reversed, int trim) {
  if (v > 1000) v = 1000;
  if (v < -1000) v = -1000;
  if (reversed) v = -v;
  return (int)(PULSE_CENTER_US + trim + v * range / 1000L);
}

static void writeOutputs(long steering, long throttle) {
  steeringServo.writeMicroseconds(pulseFor(steering, STEERING_RANGE_US, STEERING_REVERSED, STEERING_TRIM_US));
  esc.writeMicroseconds(pulseFor(throttle, THROTTLE_RANGE_US, THROTTLE_REVERSED, 0));
}

static void goNeutral() { writeOutputs(0, 0); }

static int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;  // lower case is rejected too: a flipped case bit is a corruption
}

// Parse an optionally negative integer of 1..5 digits at *p, in [lo, hi]; advance *p.
static bool parseInt(const char **p, long lo, long hi, long *out) {
  const char *s = *p;
  bool neg = false;
  if (*s == '-') {
    neg = true;
    s++;
  }
  uint8_t digits = 0;
  long v = 0;
  while (*s >= '0' && *s <= '9') {
    if (++digits > 5) return false;
    v = v * 10 + (*s - '0');
    s++;
  }
  if (digits == 0) return false;
  if (neg) v = -v;
  if (v < lo || v > hi) return false;
  *out = v;
  *p = s;
  return true;
}

static void accepted() {
  lastValidMs = millis();
  armed = true;
  failsafe = false;
}

static void handleLine(char *s, uint8_t n) {
  if (n > 0 && s[n - 1] == '\r') n--;
  if (n < 4 || n > MAX_LINE) return;
  s[n] = '\0';
  // "<payload>*XX": the '*' is third from the end.
  if (s[n - 3] != '*') return;
  int hi = hexValue(s[n - 2]), lo = hexValue(s[n - 1]);
  if (hi < 0 || lo < 0) return;
  uint8_t plen = n - 3;
  for (uint8_t i = 0; i < plen; i++) {
    if (s[i] < 0x20 || s[i] > 0x7E) return;
  }
  if (xorOf(s, plen) != (uint8_t)((hi << 4) | lo)) return;
  s[plen] = '\0';

  if (plen == 1 && s[0] == 'N') {
    goNeutral();
    accepted();
    return;
  }
  if (plen >= 7 && s[0] == 'A' && s[1] == ',') {
    const char *p = s + 2;
    long steering, throttle, seq;
    if (!parseInt(&p, -1000, 1000, &steering) || *p++ != ',') return;
    if (!parseInt(&p, -1000, 1000, &throttle) || *p++ != ',') return;
    if (!parseInt(&p, 0, 65535, &seq) || *p != '\0') return;
    writeOutputs(steering, throttle);
    accepted();
    char ack[12];
    snprintf(ack, sizeof ack, "ACK,%ld", seq);
    sendLine(ack);
  }
}

void setup() {
  Serial.begin(BAUD);
  steeringServo.attach(STEERING_PIN);
  esc.attach(ESC_PIN);
  goNeutral();
  sendLine("READY");
}

void loop() {
  while (Serial.available() > 0) {
    char c = (char)Serial.read();
    if (c == '\n') {
      if (!lineOverflow) handleLine(lineBuf, lineLen);
      lineLen = 0;
      lineOverflow = false;
    } else if (lineLen < MAX_LINE + 1) {
      lineBuf[lineLen++] = c;
    } else {
      lineOverflow = true;  // drop the whole line
    }
  }
  if (armed && !failsafe && (unsigned long)(millis() - lastValidMs) > WATCHDOG_MS) {
    goNeutral();
    failsafe = true;
    sendLine("FAILSAFE");
  }
}
