// rover_board: an Arduino Uno (ATmega328P, 16 MHz) emulated by simavr, running a firmware ELF,
// with its UART on a pseudo-terminal and its servo / ESC pins recorded.
//
//   rover_board FIRMWARE.elf [--log FILE] [--link PATH] [--speed X] [--seconds S] [--boot-ms MS]
//               [--no-reset-on-open]
//
// - Prints "pty <slave path>" on stdout once the board runs; open that path (or --link, a
//   symlink to it) with any serial library. Bytes reach the AVR at the 115200-baud byte rate
//   (one every 10 bit times), never faster, as over a real wire.
// - Like an Uno's DTR auto-reset, the board resets when a host opens the port (unless
//   --no-reset-on-open) and the sketch starts --boot-ms later (default 1000, the Uno
//   bootloader's wait; pins float meanwhile and bytes from the host are lost, as the
//   bootloader eats them). Bytes the board sends while no host has the port open are lost.
// - Runs in step with the wall clock (--speed 1, the default; 0 = as fast as possible) so a
//   host's timing means the same thing as on a real board.
// - Writes one line per event to --log (default stdout), every time in AVR cycles since power-on
//   (16 per microsecond) and in CLOCK_MONOTONIC nanoseconds (Python: time.monotonic_ns()):
//     B <cycle> <ns>               power-on or reset (after a DTR reset the sketch starts --boot-ms later)
//     E <cycle> <ns> <pin> <level> a level change on pin 9 (servo) or 10 (ESC)
//     R <cycle> <ns> <byte hex>    a byte delivered to the AVR's UART (host -> board)
//     T <cycle> <ns> <byte hex>    a byte the AVR's UART sent (board -> host)
//     O <cycle> <ns> / C <cycle> <ns>   a host opened / closed the port
//     S <cycle> <ns> <max behind wall clock, us>   at exit
// Stops on SIGINT / SIGTERM or after --seconds of AVR time.
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <simavr/avr_ioport.h>
#include <simavr/avr_timer.h>
#include <simavr/avr_uart.h>
#include <simavr/sim_avr.h>
#include <simavr/sim_elf.h>
#include <simavr/sim_io.h>

#define F_CPU 16000000ULL
#define BAUD 115200ULL
#define CYCLES_PER_BYTE (F_CPU * 10 / BAUD)  // start + 8 data + stop bits
#define PUMP_CYCLES (F_CPU / 2000)           // host I/O and pacing every 0.5 ms of AVR time
#define QUEUE_SIZE 8192
#define TCCR1B_ADDR 0x81
#define OCR1AL_ADDR 0x88
#define OCR1BL_ADDR 0x8A

typedef struct {
  uint8_t data[QUEUE_SIZE];
  size_t head, len;
} queue_t;

typedef struct {  // simavr's handler for an OCR1xL write, and the write the chip would buffer
  avr_io_write_t c;
  void *param;
  uint8_t pending, value;
} ocr_hook_t;

typedef struct {
  avr_t *avr;
  FILE *log;
  int master;
  int host_open;
  int reset_on_open;
  uint64_t boot_cycles;  // DTR reset -> sketch running
  int reset_pending;
  int xon;
  queue_t rx;  // host -> AVR, waiting for the UART
  queue_t tx;  // AVR -> host, waiting for the pty
  avr_irq_t *uart_in;
  avr_irq_t *port_irqs[3];  // PB1, PB2, DDRB: their cached values go stale across a reset
  uint8_t driven[2];     // PB1, PB2 as the port / timer drives them
  uint8_t ddr;           // DDRB
  uint8_t pin_level[2];  // what the servo / ESC sees
  ocr_hook_t ocr[2];
  int ocr_apply_scheduled;
  uint64_t cycle_base;  // keeps logged cycles monotonic across resets
  uint64_t start_ns;
  double speed;
  int64_t max_behind_ns;
} board_t;

static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t board_cycle(const board_t *b) { return b->cycle_base + b->avr->cycle; }

static void log_event(board_t *b, char kind, const char *rest) {
  fprintf(b->log, "%c %llu %llu%s\n", kind, (unsigned long long)board_cycle(b), (unsigned long long)now_ns(), rest);
}

static void queue_push(queue_t *q, uint8_t v) {
  if (q->len == QUEUE_SIZE) return;  // a full buffer drops, as a UART would
  q->data[(q->head + q->len) % QUEUE_SIZE] = v;
  q->len++;
}

static uint8_t queue_pop(queue_t *q) {
  uint8_t v = q->data[q->head];
  q->head = (q->head + 1) % QUEUE_SIZE;
  q->len--;
  return v;
}

// ---- Timer1 as the ATmega328P datasheet has it --------------------------------------------
// simavr 1.6 (Debian's) lists Timer1's waveform mode 14 (fast PWM, TOP = ICR1) as phase-correct
// PWM, in which it ignores writes to the compare registers; and in fast PWM it applies an
// OCR1x write at once, where the chip buffers it until the next frame starts (BOTTOM). Both
// are corrected here: the mode table entry, and OCR1x writes held back to the frame start.

static avr_cycle_count_t apply_ocr(avr_t *avr, avr_cycle_count_t when, void *param) {
  (void)when;
  board_t *b = param;
  for (int i = 0; i < 2; i++) {
    ocr_hook_t *h = &b->ocr[i];
    if (!h->pending) continue;
    avr_io_addr_t addr = i ? OCR1BL_ADDR : OCR1AL_ADDR;
    // simavr recomputes the compare time only when the low byte changes: make sure it does.
    h->c(avr, addr, h->value ^ 1, h->param);
    h->c(avr, addr, h->value, h->param);
    h->pending = 0;
  }
  b->ocr_apply_scheduled = 0;
  return 0;
}

static void on_ocr_write(avr_t *avr, avr_io_addr_t addr, uint8_t v, void *param) {
  ocr_hook_t *h = param;
  if ((avr->data[TCCR1B_ADDR] & 0x07) == 0) {  // timer stopped: the value is loaded as it starts
    h->c(avr, addr, v, h->param);
    return;
  }
  h->value = v;
  h->pending = 1;
}

// A rising compare output is a frame start (BOTTOM): load the buffered values just after it.
static void on_frame_start(board_t *b) {
  if (b->ocr_apply_scheduled || !(b->ocr[0].pending || b->ocr[1].pending)) return;
  b->ocr_apply_scheduled = 1;
  avr_cycle_timer_register(b->avr, 1, apply_ocr, b);
}

static int fix_timer1(board_t *b) {
  avr_t *avr = b->avr;
  for (avr_io_t *io = avr->io_port; io; io = io->next) {
    if (strcmp(io->kind, "timer") || ((avr_timer_t *)io)->name != '1') continue;
    ((avr_timer_t *)io)->wgm_op[14] = (avr_timer_wgm_t)AVR_TIMER_WGM_ICFASTPWM();
    for (int i = 0; i < 2; i++) {
      int a = AVR_DATA_TO_IO(i ? OCR1BL_ADDR : OCR1AL_ADDR);
      b->ocr[i] = (ocr_hook_t){.c = avr->io[a].w.c, .param = avr->io[a].w.param};
      avr->io[a].w.c = on_ocr_write;
      avr->io[a].w.param = &b->ocr[i];
    }
    return 0;
  }
  return -1;
}

// ---- AVR side (called from inside avr_run) -----------------------------------------------

// What the servo / ESC sees: the pin's level while it is an output; while it is an input it
// floats (read as low: the ESC's input is pulled down), whatever the timer does internally.
static void update_pin(board_t *b, int idx) {
  uint8_t level = b->driven[idx] && (b->ddr & (1u << (idx + 1)));
  if (level == b->pin_level[idx]) return;
  b->pin_level[idx] = level;
  char rest[16];
  snprintf(rest, sizeof rest, " %d %u", idx == 0 ? 9 : 10, level);
  log_event(b, 'E', rest);
}

static void on_pin(avr_irq_t *irq, uint32_t value, void *param) {
  board_t *b = param;
  int idx = irq->irq == IOPORT_IRQ_PIN1 ? 0 : 1;  // PB1 = pin 9, PB2 = pin 10
  if ((value & 1) && !b->driven[idx]) on_frame_start(b);
  b->driven[idx] = value & 1;
  update_pin(b, idx);
}

static void on_ddr(avr_irq_t *irq, uint32_t value, void *param) {
  (void)irq;
  board_t *b = param;
  b->ddr = (uint8_t)value;
  update_pin(b, 0);
  update_pin(b, 1);
}

static void on_uart_out(avr_irq_t *irq, uint32_t value, void *param) {
  (void)irq;
  board_t *b = param;
  char rest[8];
  snprintf(rest, sizeof rest, " %02x", value & 0xff);
  log_event(b, 'T', rest);
  if (b->host_open) queue_push(&b->tx, (uint8_t)value);
}

static void on_xon(avr_irq_t *irq, uint32_t value, void *param) {
  (void)irq;
  (void)value;
  ((board_t *)param)->xon = 1;
}

static void on_xoff(avr_irq_t *irq, uint32_t value, void *param) {
  (void)irq;
  (void)value;
  ((board_t *)param)->xon = 0;
}

// One byte per byte time, as the wire delivers them.
static avr_cycle_count_t feed_uart(avr_t *avr, avr_cycle_count_t when, void *param) {
  (void)avr;
  board_t *b = param;
  if (b->rx.len > 0 && b->xon) {
    uint8_t v = queue_pop(&b->rx);
    char rest[8];
    snprintf(rest, sizeof rest, " %02x", v);
    log_event(b, 'R', rest);
    avr_raise_irq(b->uart_in, v);
  }
  return when + CYCLES_PER_BYTE;
}

// ---- host side ---------------------------------------------------------------------------

static void pump_pty(board_t *b) {
  struct pollfd p = {.fd = b->master, .events = POLLIN};
  poll(&p, 1, 0);
  // With no process holding the slave open, the master reports a hang-up.
  int open_now = !(p.revents & POLLHUP);
  if (open_now != b->host_open) {
    b->host_open = open_now;
    log_event(b, open_now ? 'O' : 'C', "");
    b->tx.len = 0;
    if (open_now && b->reset_on_open) b->reset_pending = 1;
  }
  if (p.revents & POLLIN) {
    uint8_t buf[512];
    ssize_t n = read(b->master, buf, sizeof buf);
    for (ssize_t i = 0; i < n; i++) queue_push(&b->rx, buf[i]);
  }
  while (b->host_open && b->tx.len > 0) {
    uint8_t v = b->tx.data[b->tx.head];
    if (write(b->master, &v, 1) != 1) break;  // pty full: retry next pump
    queue_pop(&b->tx);
  }
}

// Sleep until the wall clock catches up with the AVR's; note how far behind it fell.
static void pace(board_t *b) {
  if (b->speed <= 0) return;
  uint64_t avr_ns = (uint64_t)((double)board_cycle(b) * 1e9 / (double)F_CPU / b->speed);
  int64_t ahead = (int64_t)(b->start_ns + avr_ns) - (int64_t)now_ns();
  if (ahead > 0) {
    struct timespec ts = {.tv_sec = ahead / 1000000000LL, .tv_nsec = ahead % 1000000000LL};
    nanosleep(&ts, NULL);
  } else if (-ahead > b->max_behind_ns) {
    b->max_behind_ns = -ahead;
  }
}

static avr_cycle_count_t pump(avr_t *avr, avr_cycle_count_t when, void *param) {
  (void)avr;
  board_t *b = param;
  pump_pty(b);
  fflush(b->log);
  pace(b);
  return when + PUMP_CYCLES;
}

static void setup_io(board_t *b) {
  avr_t *avr = b->avr;
  uint32_t flags = 0;
  avr_ioctl(avr, AVR_IOCTL_UART_GET_FLAGS('0'), &flags);
  flags &= ~(uint32_t)(AVR_UART_FLAG_STDIO | AVR_UART_FLAG_POLL_SLEEP);  // we pace; we own the bytes
  avr_ioctl(avr, AVR_IOCTL_UART_SET_FLAGS('0'), &flags);
  avr_cycle_timer_register(avr, CYCLES_PER_BYTE, feed_uart, b);
  avr_cycle_timer_register(avr, PUMP_CYCLES, pump, b);
}

static void reset_board(board_t *b) {
  uint64_t before = board_cycle(b);
  avr_reset(b->avr);  // also clears the cycle timers
  b->cycle_base = before - b->avr->cycle;
  b->rx.len = 0;
  b->ocr[0].pending = b->ocr[1].pending = 0;
  b->ocr_apply_scheduled = 0;
  // simavr only notifies value changes and keeps the IRQs' last values through a reset: zero
  // them as the registers are, or the firmware setting DDRB again would go unnoticed.
  for (int i = 0; i < 3; i++) b->port_irqs[i]->value = 0;
  b->ddr = 0;  // reset floats the pins: a pulse in progress ends here
  b->driven[0] = b->driven[1] = 0;
  update_pin(b, 0);
  update_pin(b, 1);
  b->reset_pending = 0;
  log_event(b, 'B', "");
  setup_io(b);
}

// DTR reset: the chip resets, then the bootloader waits for a programmer before starting the
// sketch. Emulated time passes (pins floating) and the host's bytes meanwhile are dropped.
static void dtr_reset(board_t *b) {
  reset_board(b);
  b->cycle_base += b->boot_cycles;
  pace(b);
  uint8_t sink[512];
  while (read(b->master, sink, sizeof sink) > 0) {
  }
  b->rx.len = 0;
}

static int open_pty(board_t *b, const char *link) {
  b->master = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK);
  if (b->master < 0 || grantpt(b->master) || unlockpt(b->master)) return -1;
  const char *slave = ptsname(b->master);
  // Raw mode, set through a slave fd we then close (so "no host" reads as a hang-up).
  int s = open(slave, O_RDWR | O_NOCTTY);
  if (s < 0) return -1;
  struct termios t;
  tcgetattr(s, &t);
  cfmakeraw(&t);
  tcsetattr(s, TCSANOW, &t);
  close(s);
  if (link) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", link);
    unlink(tmp);
    if (symlink(slave, tmp) || rename(tmp, link)) return -1;
  }
  printf("pty %s\n", slave);
  fflush(stdout);
  return 0;
}

static void usage(void) {
  fprintf(stderr, "usage: rover_board FIRMWARE.elf [--log FILE] [--link PATH] [--speed X] [--seconds S] "
                  "[--boot-ms MS] [--no-reset-on-open]\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *elf = NULL, *log_path = NULL, *link = NULL;
  double seconds = 0;
  board_t b = {.speed = 1.0, .reset_on_open = 1, .boot_cycles = F_CPU};
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--log") && i + 1 < argc) log_path = argv[++i];
    else if (!strcmp(argv[i], "--link") && i + 1 < argc) link = argv[++i];
    else if (!strcmp(argv[i], "--speed") && i + 1 < argc) b.speed = atof(argv[++i]);
    else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
    else if (!strcmp(argv[i], "--boot-ms") && i + 1 < argc) b.boot_cycles = (uint64_t)(atof(argv[++i]) * F_CPU / 1000);
    else if (!strcmp(argv[i], "--no-reset-on-open")) b.reset_on_open = 0;
    else if (argv[i][0] != '-' && !elf) elf = argv[i];
    else usage();
  }
  if (!elf) usage();

  elf_firmware_t fw;
  memset(&fw, 0, sizeof fw);
  if (elf_read_firmware(elf, &fw)) {
    fprintf(stderr, "rover_board: cannot read %s\n", elf);
    return 1;
  }
  b.avr = avr_make_mcu_by_name("atmega328p");
  if (!b.avr) return 1;
  avr_init(b.avr);
  fw.frequency = F_CPU;
  avr_load_firmware(b.avr, &fw);
  b.avr->frequency = F_CPU;
  if (fix_timer1(&b)) {
    fprintf(stderr, "rover_board: no Timer1 in this simavr\n");
    return 1;
  }

  b.log = log_path ? fopen(log_path, "w") : stdout;
  if (!b.log) {
    perror(log_path);
    return 1;
  }
  if (open_pty(&b, link)) {
    perror("rover_board: pty");
    return 1;
  }
  b.port_irqs[0] = avr_io_getirq(b.avr, AVR_IOCTL_IOPORT_GETIRQ('B'), IOPORT_IRQ_PIN1);
  b.port_irqs[1] = avr_io_getirq(b.avr, AVR_IOCTL_IOPORT_GETIRQ('B'), IOPORT_IRQ_PIN2);
  b.port_irqs[2] = avr_io_getirq(b.avr, AVR_IOCTL_IOPORT_GETIRQ('B'), IOPORT_IRQ_DIRECTION_ALL);
  avr_irq_register_notify(b.port_irqs[0], on_pin, &b);
  avr_irq_register_notify(b.port_irqs[1], on_pin, &b);
  avr_irq_register_notify(b.port_irqs[2], on_ddr, &b);
  b.uart_in = avr_io_getirq(b.avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_INPUT);
  avr_irq_register_notify(avr_io_getirq(b.avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUTPUT), on_uart_out, &b);
  avr_irq_register_notify(avr_io_getirq(b.avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUT_XON), on_xon, &b);
  avr_irq_register_notify(avr_io_getirq(b.avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUT_XOFF), on_xoff, &b);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);

  b.start_ns = now_ns();
  log_event(&b, 'B', "");
  setup_io(&b);
  uint64_t limit = seconds > 0 ? (uint64_t)(seconds * (double)F_CPU) : 0;
  while (!stop_requested && (!limit || board_cycle(&b) < limit)) {
    int state = avr_run(b.avr);
    if (state == cpu_Done || state == cpu_Crashed) {
      fprintf(stderr, "rover_board: the AVR %s at cycle %llu\n", state == cpu_Done ? "stopped" : "crashed",
              (unsigned long long)board_cycle(&b));
      break;
    }
    if (b.reset_pending) dtr_reset(&b);
  }
  char rest[32];
  snprintf(rest, sizeof rest, " %lld", (long long)(b.max_behind_ns / 1000));
  log_event(&b, 'S', rest);
  fclose(b.log);
  if (link) unlink(link);
  return 0;
}
