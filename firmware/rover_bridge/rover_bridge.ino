// rover_bridge.ino: the Arduino side of edgeact's serial protocol (Pi -> Arduino -> servo + ESC).
// Target: Arduino Uno / Nano (ATmega328P, 16 MHz). Build and flash: `edgeact firmware flash`
// or `make -C firmware` (firmware/Makefile); it needs no library beyond the Arduino core.
//
// Line-based ASCII at 115200 baud; every line ends in *XX, the XOR of the bytes before '*'
// as two upper-case hex digits. Lines with a bad checksum, syntax or range are dropped.
//
//   Pi -> Arduino   A,<steering>,<throttle>,<seq>*XX   integers in [-1000, 1000], seq 0..65535
//                   N*XX                              neutral now (not acknowledged)
//   Arduino -> Pi   READY,<version>*XX  once, at boot (the host opening the port reboots Uno/Nano)
//                   ACK,<seq>*XX        for every valid A line
//                   FAILSAFE*XX         once, when the watchdog trips
//
// Watchdog: after the first valid line, if no valid line arrives for WATCHDOG_MS the outputs
// go neutral and FAILSAFE is printed; the next valid line re-arms it. Outputs are neutral at
// boot (which also arms most ESCs). The reference implementation of the protocol is
// src/edgeact/runtime/protocol.py (PROTOCOL_VERSION there must match the one here);
// src/edgeact/runtime/sim_arduino.py behaves like this sketch.
//
// Pulses come from Timer1's hardware PWM (OC1A = pin 9, OC1B = pin 10): 50 Hz frames, 0.5 us
// steps, no jitter from the serial or millis() interrupts, and a width change takes effect
// at the start of the next 20 ms frame (the compare registers are double-buffered), so no
// pulse is ever cut short or stretched. Hence the fixed pins.
//
// Configure below (or with -D flags): watchdog, pulse widths, trims, reversal.
// Wiring: servo signal -> pin 9, ESC signal -> pin 10, grounds common with the Arduino;
// power the servo from the ESC's BEC, not from the Arduino's 5 V pin.

#include <Arduino.h>
#include <stdlib.h>

#define PROTOCOL_VERSION 2  // bump on any change to the lines above; the Pi refuses a mismatch

#if defined(STEERING_PIN) && STEERING_PIN != 9
#error "STEERING_PIN must be 9: the steering pulse is Timer1's OC1A output"
#endif
#if defined(ESC_PIN) && ESC_PIN != 10
#error "ESC_PIN must be 10: the ESC pulse is Timer1's OC1B output"
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

#define FRAME_US 20000L     // 50 Hz, what every hobby servo and ESC accepts
#define TICKS_PER_US 2      // Timer1 at F_CPU / 8 = 2 MHz
#define MAX_LINE 48         // longest valid line is 22 bytes; longer lines are dropped whole
#define STR_(x) #x
#define STR(x) STR_(x)

static_assert(F_CPU == 16000000L, "timing assumes a 16 MHz ATmega328P (Uno / Nano)");
static_assert(PULSE_CENTER_US + STEERING_TRIM_US - STEERING_RANGE_US >= 500 &&
                  PULSE_CENTER_US + STEERING_TRIM_US + STEERING_RANGE_US <= 2500,
              "steering pulses must stay within 500..2500 us");
static_assert(PULSE_CENTER_US - THROTTLE_RANGE_US >= 500 && PULSE_CENTER_US + THROTTLE_RANGE_US <= 2500,
              "throttle pulses must stay within 500..2500 us");

static char lineBuf[MAX_LINE + 2];  // + '\r' + '\0'
static uint8_t lineLen = 0;
static bool lineOverflow = false;

static unsigned long lastValidUs = 0;  // micros(): the watchdog is timed to the microsecond
static bool armed = false;             // watchdog armed after the first valid line
static bool failsafe = false;          // tripped and not yet re-armed

static uint8_t xorOf(const char *s, uint8_t n) {
  uint8_t x = 0;
  for (uint8_t i = 0; i < n; i++) x ^= (uint8_t)s[i];
  return x;
}

static void sendLine(const char *payload) {
  static const char HEX_DIGITS[] = "0123456789ABCDEF";
  uint8_t n = (uint8_t)strlen(payload);
  uint8_t c = xorOf(payload, n);
  Serial.write((const uint8_t *)payload, n);
  Serial.write('*');
  Serial.write(HEX_DIGITS[c >> 4]);
  Serial.write(HEX_DIGITS[c & 0x0F]);
  Serial.write('\n');
}

// Wire value in [-1000, 1000] -> Timer1 ticks (0.5 us each), truncated toward zero.
static uint16_t pulseTicks(long v, long rangeUs, bool reversed, int trimUs) {
  if (v > 1000) v = 1000;
  if (v < -1000) v = -1000;
  if (reversed) v = -v;
  return (uint16_t)(TICKS_PER_US * (PULSE_CENTER_US + trimUs) + v * (TICKS_PER_US * rangeUs) / 1000L);
}

// Fast PWM: the pin rises at the frame start and falls after OCR1x + 1 ticks. OCR1x is
// buffered until the next frame; no interrupt touches Timer1, so the 16-bit writes are safe.
static void writeOutputs(long steering, long throttle) {
  OCR1A = pulseTicks(steering, STEERING_RANGE_US, STEERING_REVERSED, STEERING_TRIM_US) - 1;
  OCR1B = pulseTicks(throttle, THROTTLE_RANGE_US, THROTTLE_REVERSED, 0) - 1;
}

static void goNeutral() { writeOutputs(0, 0); }

// Timer1 mode 14 (fast PWM, TOP = ICR1), clear OC1A/OC1B on compare, clock / 8. The core's
// init() set Timer1 up for analogWrite; every register it touched is overwritten here.
static void startPulses() {
  TCCR1B = 0;  // stopped while configuring
  TCCR1A = _BV(COM1A1) | _BV(COM1B1) | _BV(WGM11);
  ICR1 = (uint16_t)(FRAME_US * TICKS_PER_US - 1);
  goNeutral();
  // Pins driven low by the (idle) compare outputs rather than floating; the first tick wraps
  // TOP -> BOTTOM, which loads the neutral widths and starts a whole first pulse.
  TCNT1 = ICR1;
  DDRB |= _BV(DDB1) | _BV(DDB2);
  TCCR1B = _BV(WGM13) | _BV(WGM12) | _BV(CS11);
}

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
  lastValidUs = micros();
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
    char ack[10] = "ACK,";  // + up to 5 digits + '\0'
    utoa((unsigned)seq, ack + 4, 10);
    sendLine(ack);
  }
}

void setup() {
  startPulses();
  Serial.begin(BAUD);
  sendLine("READY," STR(PROTOCOL_VERSION));
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
  if (armed && !failsafe && micros() - lastValidUs >= WATCHDOG_MS * 1000UL) {
    goNeutral();
    failsafe = true;
    sendLine("FAILSAFE");
  }
}
