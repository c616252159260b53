"""rover_bridge.ino compiled for the host (g++ and a stand-in Arduino core) against protocol.py:
the sketch and the Python side accept and reject exactly the same lines."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgeact.runtime import protocol as P

ROOT = Path(__file__).resolve().parents[2]
SKETCH = ROOT / "firmware" / "rover_bridge" / "rover_bridge.ino"
HOST = Path(__file__).resolve().parent / "firmware_host"


@pytest.fixture(scope="module")
def firmware(tmp_path_factory):
    cxx = shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        pytest.skip("no C++ compiler to build the sketch for the host")
    exe = tmp_path_factory.mktemp("fw") / "rover_bridge"
    cmd = [cxx, "-std=c++11", "-Wall", "-Wextra", "-Werror", "-I", str(HOST), "-include", "Arduino.h",
           "-x", "c++", str(SKETCH), "-x", "c++", str(HOST / "harness.cpp"), "-o", str(exe)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return exe


def run(exe, records: list[str]) -> list[tuple[list[str], tuple[int, int]]]:
    """Feed records; return, for setup and each record, (lines sent, (steering_us, esc_us))."""
    out = subprocess.run([str(exe)], input="\n".join(records) + "\n", capture_output=True, text=True,
                         check=True).stdout.splitlines()
    steps, tx = [], []
    for line in out:
        if line.startswith("TX "):
            tx.append(line[3:])
        else:
            _, s, e = line.split()
            steps.append((tx, (int(s), int(e))))
            tx = []
    return steps


def W(data: bytes) -> str:
    return "W " + data.hex()


def test_boot_ack_and_pulse_widths(firmware):
    steps = run(firmware, [W(P.encode_drive(0.5, -0.25, 7)), W(P.encode_drive(-1, 1, 65535)), W(P.encode_neutral())])
    assert steps[0] == ([P.encode_ready()[:-1].decode()], (1500, 1500))
    assert steps[1] == ([P.encode_ack(7)[:-1].decode()], (1750, 1375))
    assert steps[2] == ([P.encode_ack(65535)[:-1].decode()], (1000, 2000))
    assert steps[3] == ([], (1500, 1500))  # N: neutral, no ACK
    for tx, _ in steps:  # what the sketch sends is what the Pi side parses
        for line in tx:
            P.decode_arduino_line(line.encode())


def test_watchdog_trips_after_the_timeout_once(firmware):
    steps = run(firmware, ["T 1000", W(P.encode_drive(0, 0.5, 1)), "T 1250", "T 1251", "T 1400",
                           W(P.encode_drive(0, 0.2, 2)), "T 1500"])
    assert steps[1][0] == [] and steps[1][1] == (1500, 1500)  # not armed before the first command
    assert steps[3] == ([], (1500, 1750))  # 250 ms: not yet
    assert steps[4] == (["FAILSAFE*13"], (1500, 1500))  # 251 ms: neutral + FAILSAFE
    assert steps[5] == ([], (1500, 1500))  # said once
    assert steps[6][1] == (1500, 1600)  # a valid command re-arms


def test_sketch_and_python_agree_on_corrupt_and_random_lines(firmware):
    rng = np.random.default_rng(1)
    lines: list[bytes] = []
    good = P.encode_drive(0.123, -0.456, 321)[:-1]
    for i in range(len(good)):  # every single-bit corruption of a valid line
        for bit in range(7):
            bad = bytearray(good)
            bad[i] ^= 1 << bit
            if b"\n" not in bad:
                lines.append(bytes(bad))
    alphabet = np.frombuffer(b"AN,-0123456789*ABCDEF\r", np.uint8)
    for _ in range(300):  # random lines from the protocol's alphabet, half with a correct checksum
        body = bytes(rng.choice(alphabet, size=int(rng.integers(1, 26))))
        lines.append(P.frame(body.split(b"*")[0])[:-1] if rng.random() < 0.5 else body)
    lines += [P.frame(f"A,{s},{t},{q}")[:-1] for s, t, q in
              [(1000, -1000, 0), (1001, 0, 1), (0, -1001, 2), (0, 0, 65536), ("05", 1, 3), ("", 1, 4), ("-0", 0, 5)]]
    lines.append(good.lower())
    steps = run(firmware, [W(line + b"\n") for line in lines])[1:]
    for line, (tx, _) in zip(lines, steps, strict=False):
        try:
            msg = P.decode_pi_line(line)
        except P.ProtocolError:
            msg = None
        acked = [t for t in tx if t.startswith("ACK")]
        if isinstance(msg, P.Drive):
            assert acked == [P.encode_ack(msg.seq)[:-1].decode()], line
        else:
            assert acked == [], line
