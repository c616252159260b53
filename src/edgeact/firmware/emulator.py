"""The built firmware on an emulated Arduino Uno, and what its pins and UART did.

:class:`EmulatedBoard` runs ``rover_board`` (``firmware/emulator/rover_board.c``: simavr's
ATmega328P at 16 MHz, in step with the wall clock, its UART on a pseudo-terminal that any
serial program opens like a real board's port, resetting when it is opened as a Uno does).
It logs every servo / ESC pin edge and UART byte in AVR cycles; :func:`parse_trace` turns
that log into pulses and lines (:class:`Trace`). Linux only (ptys, simavr).
"""

from __future__ import annotations

import os
import select
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgeact.runtime import protocol as P

F_CPU = 16_000_000
CYCLES_PER_US = F_CPU // 1_000_000
SERVO_PIN, ESC_PIN = 9, 10
FRAME_US = 20_000  # the sketch's pulse period
NEUTRAL_US = 1500.0
EDGE_US = 0.25  # simavr moves pin edges to instruction boundaries (up to 4 cycles); the chip does not


def expected_us(wire: int, range_us: int = 500) -> float:
    """The sketch's mapping: 1500 us + wire * range / 1000, in Timer1's 0.5 us steps (truncated)."""
    return (2 * 1500 + int(wire * 2 * range_us / 1000)) / 2


@dataclass(frozen=True)
class Pulse:
    rise: int  # AVR cycle of the rising edge
    width: int  # cycles
    rise_ns: int  # CLOCK_MONOTONIC of the rising edge (time.monotonic_ns)

    @property
    def width_us(self) -> float:
        return self.width / CYCLES_PER_US


@dataclass(frozen=True)
class Line:
    start: int  # AVR cycle of its first byte
    end: int  # AVR cycle of its last byte ('\n')
    end_ns: int
    text: bytes  # without the '\n'


@dataclass
class Trace:
    pulses: dict[int, list[Pulse]] = field(default_factory=lambda: {SERVO_PIN: [], ESC_PIN: []})
    rx: list[Line] = field(default_factory=list)  # lines the board received
    tx: list[Line] = field(default_factory=list)  # lines the board sent
    boots: list[int] = field(default_factory=list)
    opens: list[int] = field(default_factory=list)
    max_behind_us: int | None = None  # from the harness's summary line, once it has exited

    def pulses_between(self, pin: int, start: int, end: int) -> list[Pulse]:
        return [p for p in self.pulses[pin] if start <= p.rise < end]

    def first_pulse_after(self, pin: int, cycle: int, width_us: float | None = None, tol_us: float = 1.0) -> Pulse:
        for p in self.pulses[pin]:
            if p.rise >= cycle and (width_us is None or abs(p.width_us - width_us) <= tol_us):
                return p
        raise AssertionError(f"no pulse on pin {pin} after cycle {cycle}" + (f" of {width_us} us" if width_us else ""))


    def drives(self) -> list[tuple[Line, P.Drive]]:
        """Every valid drive line the board received, decoded."""
        out = []
        for line in self.rx:
            try:
                msg = P.decode_pi_line(line.text)
            except P.ProtocolError:
                continue
            if isinstance(msg, P.Drive):
                out.append((line, msg))
        return out

    def acks(self) -> dict[int, Line]:
        """The board's ACK lines by sequence number (the latest of each)."""
        out = {}
        for line in self.tx:
            try:
                msg = P.decode_arduino_line(line.text)
            except P.ProtocolError:
                continue
            if isinstance(msg, P.Ack):
                out[msg.seq] = line
        return out


def parse_trace(text: str) -> Trace:
    trace = Trace()
    high: dict[int, tuple[int, int]] = {}
    partial = {"R": bytearray(), "T": bytearray()}
    started = {"R": 0, "T": 0}
    for row in text.splitlines():
        f = row.split()
        if len(f) < 3 or len(f[0]) != 1:
            continue  # simavr's own messages
        kind, cycle, ns = f[0], int(f[1]), int(f[2])
        if kind == "E":
            pin, level = int(f[3]), int(f[4])
            if level:
                high[pin] = (cycle, ns)
            elif pin in high:
                rise, rise_ns = high.pop(pin)
                if cycle > rise:  # simavr can raise and drop a pin in one cycle: nothing a servo sees
                    trace.pulses[pin].append(Pulse(rise, cycle - rise, rise_ns))
        elif kind in "RT":
            byte = int(f[3], 16)
            if not partial[kind]:
                started[kind] = cycle
            if byte == 0x0A:
                line = Line(started[kind] if partial[kind] else cycle, cycle, ns, bytes(partial[kind]))
                (trace.rx if kind == "R" else trace.tx).append(line)
                partial[kind].clear()
            else:
                partial[kind].append(byte)
        elif kind == "B":
            trace.boots.append(cycle)
            partial["R"].clear()
        elif kind == "O":
            trace.opens.append(cycle)
        elif kind == "S":
            trace.max_behind_us = int(f[3])
    return trace


class EmulatedBoard:
    """``rover_board`` running ``elf``: start() → :attr:`port` (a pty) is ready to open."""

    def __init__(self, harness: Path, elf: Path, workdir: Path, *, speed: float = 1.0,
                 seconds: float | None = None, reset_on_open: bool = True, boot_ms: float = 100.0) -> None:
        """``boot_ms``: DTR reset to sketch start (a Uno's bootloader waits ~1000 ms; shorter keeps tests quick)."""
        self.harness, self.elf, self.workdir = Path(harness), Path(elf), Path(workdir)
        self.speed, self.seconds, self.reset_on_open, self.boot_ms = speed, seconds, reset_on_open, boot_ms
        self.log = self.workdir / "board.log"
        self.port = str(self.workdir / "ttyUNO")
        self._proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> EmulatedBoard:
        cmd = [str(self.harness), str(self.elf), "--log", str(self.log), "--link", self.port,
               "--speed", str(self.speed), "--boot-ms", str(self.boot_ms)]
        if self.seconds is not None:
            cmd += ["--seconds", str(self.seconds)]
        if not self.reset_on_open:
            cmd.append("--no-reset-on-open")
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        end = time.monotonic() + timeout
        out = b""
        stdout = self._proc.stdout
        assert stdout is not None  # Popen(stdout=PIPE)
        while b"pty " not in out:  # simavr prints its loading messages first
            ready, _, _ = select.select([stdout], [], [], max(0.0, end - time.monotonic()))
            chunk = os.read(stdout.fileno(), 4096) if ready else b""
            if not chunk:
                self.stop()
                raise RuntimeError(f"rover_board did not start: {out!r}")
            out += chunk
        return self

    def wait(self, timeout: float = 30.0) -> Trace:
        """Wait for a ``seconds``-limited run to end; its whole trace."""
        assert self._proc is not None
        self._proc.wait(timeout)
        return self.trace()

    def stop(self) -> Trace:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(5)
        return self.trace()

    def trace(self) -> Trace:
        text = self.log.read_text() if self.log.exists() else ""
        return parse_trace(text[:text.rfind("\n") + 1])  # the harness may be mid-line

    def __enter__(self) -> EmulatedBoard:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
