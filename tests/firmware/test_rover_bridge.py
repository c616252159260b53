"""rover_bridge.ino built for the ATmega328P and run on an emulated Uno (simavr), driven by
edgeact's own SerialActuator over a pty; pulse widths and timings read off the emulated pins
in AVR cycles (16 per microsecond), not from the firmware's own account."""

from __future__ import annotations

import time

import numpy as np
import pytest
import serial

from edgeact.firmware.bench import hold
from edgeact.firmware.emulator import (
    CYCLES_PER_US,
    EDGE_US,
    ESC_PIN,
    FRAME_US,
    NEUTRAL_US,
    SERVO_PIN,
    EmulatedBoard,
    expected_us,
)
from edgeact.runtime import protocol as P
from edgeact.runtime.actuators import SerialActuator

WATCHDOG_MS = 250
MS = 1000 * CYCLES_PER_US  # cycles


def test_boot_with_no_host_holds_neutral_and_never_pulses_throttle(harness, avr_build, tmp_path):
    trace = EmulatedBoard(harness, avr_build.elf, tmp_path, speed=0, seconds=3.0).start().wait()
    assert [line.text for line in trace.tx] == [P.encode_ready()[:-1]]  # READY,2 once; no FAILSAFE unarmed
    for pin in (SERVO_PIN, ESC_PIN):
        pulses = trace.pulses[pin]
        assert len(pulses) == 150  # 3 s of 50 Hz frames, the first one whole
        widths = np.array([p.width_us for p in pulses])
        assert np.all(np.abs(widths - NEUTRAL_US) <= EDGE_US), widths
        periods = np.diff([p.rise for p in pulses]) / CYCLES_PER_US
        assert np.all(np.abs(periods - FRAME_US) <= EDGE_US)
        assert pulses[0].rise < 1 * MS  # pulses from the first millisecond: the ESC arms at once


def test_ready_acks_and_pulse_widths_over_a_sweep(board):
    act = SerialActuator(board.port, wait_ready_s=3.0)
    act.start()  # opening the port resets the board, as DTR does on a Uno: READY,2 comes back
    try:
        assert act.ready_count == 1 and act.firmware_problem is None
        wires = [-1000, -999, -750, -500, -250, -1, 0, 1, 250, 500, 750, 999, 1000]
        sends = [hold(act, board, w / 1000, -w / 1000, frames=2) for w in wires]
        deadline = time.monotonic() + 3.0
        while act.acked < act.sent and time.monotonic() < deadline:
            time.sleep(0.01)
        assert act.acked == act.sent == sum(sends) and act.rx_rejected == 0
    finally:
        act.stop()
    trace = board.stop()
    assert len(trace.boots) == 2 and trace.boots[1] >= trace.opens[0]  # power-on, then the reset on open
    cmds = trace.drives()
    assert [(d.steering, d.throttle) for _, d in cmds] == [(w, -w) for w, n in zip(wires, sends) for _ in range(n)]
    acks = trace.acks()
    starts = [i for i in range(len(cmds)) if i == 0 or cmds[i][1].steering != cmds[i - 1][1].steering]
    for k, i in enumerate(starts):
        line, d = cmds[i]
        done = acks[d.seq].start  # the firmware has set the new widths before it starts the ACK
        after_last = next(r.end for r in trace.rx if r.start > cmds[-1][0].end)  # act.stop()'s neutral
        until = cmds[starts[k + 1]][0].end if k + 1 < len(starts) else after_last
        for pin, wire in ((SERVO_PIN, d.steering), (ESC_PIN, d.throttle)):
            want = expected_us(wire)
            held = trace.pulses_between(pin, done, until)
            assert len(held) >= 2
            assert max(abs(p.width_us - want) for p in held) <= 1.0, (wire, [p.width_us for p in held])
            # The new width starts with the next frame: at most one frame after the line is handled.
            first = trace.first_pulse_after(pin, line.end, want, tol_us=1.0)
            assert first.rise - done <= FRAME_US * CYCLES_PER_US


def test_checksum_errors_and_garbage_are_rejected_as_protocol_py_does(board):
    """Every single-bit corruption of a line and random lines: the board ACKs exactly those protocol.py accepts."""
    rng = np.random.default_rng(1)
    lines: list[bytes] = []
    good = P.encode_drive(0.123, -0.456, 321)[:-1]
    for i in range(len(good)):
        for bit in range(7):
            bad = bytearray(good)
            bad[i] ^= 1 << bit
            if b"\n" not in bad:
                lines.append(bytes(bad))
    alphabet = np.frombuffer(b"AN,-0123456789*ABCDEF\r", np.uint8)
    for _ in range(150):  # random lines from the protocol's alphabet, half with a correct checksum
        body = bytes(rng.choice(alphabet, size=int(rng.integers(1, 26))))
        lines.append(P.frame(body.split(b"*")[0])[:-1] if rng.random() < 0.5 else body)
    lines += [P.frame(f"A,{s},{t},{q}")[:-1] for s, t, q in
              [(1000, -1000, 0), (1001, 0, 1), (0, -1001, 2), (0, 0, 65536), ("05", 1, 3), ("", 1, 4), ("-0", 0, 5)]]
    lines += [good.lower(), b"x" * 60]
    for k in range(40):  # valid lines between the bad ones: the board must stay in step after garbage
        s, t = rng.uniform(-1, 1, 2)
        lines.insert(int(rng.integers(0, len(lines))), P.encode_drive(s, t, 1000 + k)[:-1])
    want_acks = []
    for line in lines:
        try:
            msg = P.decode_pi_line(line)
        except P.ProtocolError:
            continue
        if isinstance(msg, P.Drive):
            want_acks.append(msg.seq)
    assert 40 <= len(want_acks) < len(lines) / 4  # both kinds are well represented

    with serial.Serial(board.port, P.BAUDRATE, timeout=0.05) as port:  # raw bytes: no Pi-side framing
        ready = P.LineBuffer()
        deadline = time.monotonic() + 3.0
        while P.encode_ready()[:-1] not in ready.feed(port.read(64)) and time.monotonic() < deadline:
            pass  # the board resets as the port opens, then says READY
        port.write(b"".join(line + b"\n" for line in lines))
        port.flush()
        deadline = time.monotonic() + 5.0
        while len(board.trace().acks()) < len(set(want_acks)) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.1)
    trace = board.stop()
    said = [P.decode_arduino_line(t.text) for t in trace.tx]  # all well-formed, as the Pi parses them
    assert all(isinstance(m, (P.Ready, P.Ack)) for m in said)
    got = [m.seq for m in said if isinstance(m, P.Ack)]
    assert got == want_acks


def test_watchdog_goes_neutral_on_the_pin_and_reports_failsafe(board):
    events: list[str] = []
    act = SerialActuator(board.port, wait_ready_s=3.0, on_event=lambda kind, msg: events.append(kind))
    act.start()
    try:
        for _ in range(15):
            act.send(0.2, 0.6)
            time.sleep(0.02)
        time.sleep(0.6)  # the Pi goes quiet
        assert act.failsafe_count == 1 and "arduino-failsafe" in events
        trace = board.trace()
    finally:
        act.stop()
    last, _ = trace.drives()[-1]
    trip = next(t for t in trace.tx if t.text == P.encode_failsafe()[:-1])
    neutral = trace.first_pulse_after(ESC_PIN, last.end, NEUTRAL_US, tol_us=EDGE_US)
    # Never early: every frame that started before the deadline still carried the command.
    before = trace.pulses_between(ESC_PIN, last.end + FRAME_US * CYCLES_PER_US, neutral.rise)
    assert before and all(abs(p.width_us - expected_us(600)) <= 1.0 for p in before)
    # The watchdog counts from the handling of the last line (well under a millisecond after its
    # last byte), and neutral widths start with the next frame.
    assert WATCHDOG_MS * MS <= trip.start - last.end <= (WATCHDOG_MS + 1) * MS
    assert neutral.rise - trip.start <= FRAME_US * CYCLES_PER_US
    assert neutral.rise - last.end <= (WATCHDOG_MS + FRAME_US / 1000 + 1) * MS
    servo = trace.first_pulse_after(SERVO_PIN, last.end, NEUTRAL_US, tol_us=EDGE_US)
    assert servo.rise == neutral.rise  # both outputs in the same frame


def test_neutral_command_applies_at_the_next_frame_without_ack(board):
    act = SerialActuator(board.port, wait_ready_s=3.0)
    act.start()
    try:
        act.send(-0.4, 0.8)
        time.sleep(0.06)
        act.neutral()
        time.sleep(0.06)
        trace = board.trace()
    finally:
        act.stop()
    n_line = next(line for line in reversed(trace.rx) if line.text == P.encode_neutral()[:-1])
    assert [t.text for t in trace.tx if t.text.startswith(b"ACK")] == [P.encode_ack(0)[:-1]]
    first = trace.first_pulse_after(ESC_PIN, n_line.end)
    assert first.rise - n_line.end <= (FRAME_US + 100) * CYCLES_PER_US and abs(first.width_us - NEUTRAL_US) <= EDGE_US


@pytest.mark.slow
def test_edgeact_run_drives_the_emulated_board_end_to_end(board, tmp_path):
    import subprocess
    import sys

    telemetry = tmp_path / "run.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "edgeact.cli", "run", "--model", "fake:5:0", "--camera", "sim", "--actuator",
         board.port, "--rate", "50", "--duration", "2", "--telemetry", str(telemetry), "--no-plot"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    trace = board.stop()
    cmds = trace.drives()
    assert len(cmds) >= 80  # ~100 commands in 2 s at 50 Hz
    acks = [t for t in trace.tx if t.text.startswith(b"ACK")]
    assert len(acks) == len(cmds)
    # Never starved at 50 Hz (after the run's final neutral, the watchdog trips, as it should).
    assert not any(t.text == P.encode_failsafe()[:-1] and t.start < trace.rx[-1].end for t in trace.tx)
    # Each command's throttle reached the ESC pin (the fake policy asks for 0.3 throttle).
    assert max(d.throttle for _, d in cmds) == 300
    widths = [p.width_us for p in trace.pulses[ESC_PIN]]
    assert max(widths) == pytest.approx(expected_us(300), abs=1.0)
    # At exit `run` sends neutral: the last frames are neutral on both pins.
    assert trace.rx[-1].text == P.encode_neutral()[:-1]
    for pin in (SERVO_PIN, ESC_PIN):
        assert abs(trace.pulses[pin][-1].width_us - NEUTRAL_US) <= EDGE_US
