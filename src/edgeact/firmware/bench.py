"""The sketch measured on an emulated Uno: pulse widths over a sweep, command-to-pulse latency,
watchdog-to-neutral time, all read off the emulated pins (``edgeact firmware bench``).

Times in AVR cycles are exact for the emulated chip; "host" times (from ``send()`` on the
Pi side to the pulse's rising edge, wall clock) include pyserial, the pty and the emulator
keeping pace with the wall clock, so they depend on the machine's load.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeact.firmware import build
from edgeact.firmware.emulator import CYCLES_PER_US, ESC_PIN, NEUTRAL_US, SERVO_PIN, EmulatedBoard, Trace, expected_us
from edgeact.runtime import protocol as P
from edgeact.runtime.actuators import SerialActuator

SWEEP = (-1000, -750, -500, -250, -100, -1, 0, 1, 100, 250, 500, 750, 1000)
RATE_HZ = 50.0
HOLD_FRAMES = 3  # whole frames at each sweep value


@dataclass(frozen=True)
class SweepRow:
    wire: int  # steering = wire, throttle = -wire
    steering: tuple[float, float, float]  # (expected, min, max) us over the frames that held the value
    throttle: tuple[float, float, float]
    frames: int


@dataclass(frozen=True)
class BenchResult:
    flash_bytes: int
    ram_bytes: int
    rows: list[SweepRow]
    handling_us: np.ndarray  # a line's last byte in -> its ACK's first byte out (AVR time)
    latency_ms: np.ndarray  # a line's last byte in -> first pulse at the new width (AVR time)
    host_latency_ms: np.ndarray  # send() -> that pulse's rising edge (wall clock)
    watchdog_trip_ms: float  # last line in -> FAILSAFE starts (AVR time)
    watchdog_neutral_ms: float  # last line in -> first neutral ESC pulse starts (AVR time)
    max_behind_ms: float | None  # how far the emulator fell behind the wall clock


def hold(act: SerialActuator, board: EmulatedBoard, steering: float, throttle: float, frames: int = 2,
         timeout_s: float = 5.0) -> int:
    """Send a command at RATE_HZ until ``frames`` whole ESC pulses have started after the board
    acknowledged it (in emulated time, so a loaded machine cannot shorten the hold); the sends."""
    want = (P.to_wire(steering), P.to_wire(throttle))
    mark = len(board.trace().drives())
    deadline = time.monotonic() + timeout_s
    sent = 0
    while time.monotonic() < deadline:
        act.send(steering, throttle)
        sent += 1
        time.sleep(1.0 / RATE_HZ)
        trace = board.trace()
        taken = [d for _, d in trace.drives()[mark:] if (d.steering, d.throttle) == want]
        ack = trace.acks().get(taken[0].seq) if taken else None
        if ack is not None and len(trace.pulses_between(ESC_PIN, ack.start, 1 << 62)) >= frames:
            return sent
    raise TimeoutError(f"the emulated board did not hold {want} for {frames} frames in {timeout_s} s")


def sweep_rows(trace: Trace) -> tuple[list[SweepRow], list[tuple[int, int, int]]]:
    """Widths held for each new command, and (line end, ACK start, first new pulse) cycles for each."""
    cmds, acks = trace.drives(), trace.acks()
    starts = [i for i in range(len(cmds)) if i == 0 or cmds[i][1].steering != cmds[i - 1][1].steering]
    rows, timings = [], []
    for k, i in enumerate(starts):
        line, d = cmds[i]
        done = acks[d.seq].start
        until = cmds[starts[k + 1]][0].end if k + 1 < len(starts) else cmds[-1][0].end
        widths = {}
        for pin, wire in ((SERVO_PIN, d.steering), (ESC_PIN, d.throttle)):
            held = [p.width_us for p in trace.pulses_between(pin, done, until)]
            widths[pin] = (expected_us(wire), min(held, default=np.nan), max(held, default=np.nan))
        first = trace.first_pulse_after(ESC_PIN, line.end, expected_us(d.throttle))
        rows.append(SweepRow(d.steering, widths[SERVO_PIN], widths[ESC_PIN],
                             len(trace.pulses_between(ESC_PIN, done, until))))
        timings.append((line.end, done, first.rise))
    return rows, timings


def run_bench(out_dir: str | Path | None = None, harness: Path | None = None) -> BenchResult:
    """Build the sketch and the harness, drive the emulated board through a sweep and a watchdog trip."""
    with tempfile.TemporaryDirectory(prefix="edgeact-fw-bench-") as tmp:
        work = Path(out_dir) if out_dir else Path(tmp)
        built = build.build("uno", work / "build")
        exe = harness or build.build_emulator(work / "build")
        board = EmulatedBoard(exe, built.elf, work).start()
        sent_ns: dict[int, int] = {}
        try:
            act = SerialActuator(board.port, wait_ready_s=3.0)
            act.start()
            try:
                for wire in SWEEP:
                    sent_ns[wire] = time.monotonic_ns()
                    hold(act, board, wire / 1000, -wire / 1000, HOLD_FRAMES)
                time.sleep(0.6)  # silence: the watchdog trips
            finally:
                act.stop()
        finally:
            trace = board.stop()
    rows, timings = sweep_rows(trace)
    first_ns = {}
    for row, (_, _, rise) in zip(rows, timings):
        first_ns[row.wire] = next(p.rise_ns for p in trace.pulses[ESC_PIN] if p.rise == rise)
    last, _ = trace.drives()[-1]
    trip = next(t for t in trace.tx if t.text == P.encode_failsafe()[:-1] and t.start > last.end)
    neutral = trace.first_pulse_after(ESC_PIN, last.end, NEUTRAL_US, tol_us=0.25)
    ms = 1000.0 * CYCLES_PER_US
    return BenchResult(
        flash_bytes=built.flash_bytes, ram_bytes=built.ram_bytes, rows=rows,
        handling_us=np.array([(done - end) / CYCLES_PER_US for end, done, _ in timings]),
        latency_ms=np.array([(rise - end) / ms for end, _, rise in timings]),
        host_latency_ms=np.array([(first_ns[w] - sent_ns[w]) / 1e6 for w in first_ns]),
        watchdog_trip_ms=(trip.start - last.end) / ms, watchdog_neutral_ms=(neutral.rise - last.end) / ms,
        max_behind_ms=None if trace.max_behind_us is None else trace.max_behind_us / 1e3)


def _stats(a: np.ndarray, unit: str) -> str:
    return f"median {np.median(a):.2f} {unit}, min {a.min():.2f}, max {a.max():.2f} (n={a.size})"


def format_result(r: BenchResult) -> str:
    lines = [f"rover_bridge for the ATmega328P: flash {r.flash_bytes} bytes of {build.FLASH_LIMIT}, "
             f"static RAM {r.ram_bytes} of {build.RAM_LIMIT}",
             "",
             "pulse widths on the emulated pins (us): command -> expected, measured min..max over the frames held",
             f"{'wire':>6} {'steer want':>10} {'steer got':>19} {'ESC want':>9} {'ESC got':>19} {'frames':>6}"]
    for row in r.rows:
        s, t = row.steering, row.throttle
        lines.append(f"{row.wire:>6} {s[0]:>10.1f} {s[1]:>9.2f}..{s[2]:<8.2f} {t[0]:>9.1f} {t[1]:>9.2f}..{t[2]:<8.2f} "
                     f"{row.frames:>6}")
    err = max(max(abs(row.steering[0] - row.steering[i]), abs(row.throttle[0] - row.throttle[i]))
              for row in r.rows for i in (1, 2))
    lines += [f"largest width error: {err:.3f} us (simavr places edges on instruction boundaries: <= 0.25 us)",
              "",
              f"line handled (last byte in -> ACK out, AVR time): {_stats(r.handling_us, 'us')}",
              f"command -> pulse (last byte in -> first pulse at the new width, AVR time; the pulses are "
              f"20 ms frames): {_stats(r.latency_ms, 'ms')}",
              f"command -> pulse (send() on the Pi side -> that pulse, wall clock, under this machine's load): "
              f"{_stats(r.host_latency_ms, 'ms')}",
              f"watchdog: last command in -> FAILSAFE {r.watchdog_trip_ms:.2f} ms, -> ESC at neutral on the pin "
              f"{r.watchdog_neutral_ms:.2f} ms (limit 250 ms + one 20 ms frame)"]
    if r.max_behind_ms is not None:
        lines.append(f"the emulator fell at most {r.max_behind_ms:.1f} ms behind the wall clock")
    return "\n".join(lines)
