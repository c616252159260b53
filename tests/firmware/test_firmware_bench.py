"""`edgeact firmware bench`: the sketch measured on the emulated board, printed as tables."""

from __future__ import annotations

import re

from edgeact.cli import main
from edgeact.firmware.bench import SWEEP


def test_bench_prints_the_sweep_latency_and_watchdog(avr_build, harness, capsys):
    assert main(["firmware", "bench"]) == 0
    out = capsys.readouterr().out
    num, span = r"\s+(\d+\.\d)", r"\s+(\d+\.\d+)\.\.(\d+\.\d+)"
    rows = re.findall(r"^\s*(-?\d+)" + num + span + num + span, out, re.M)
    assert [int(r[0]) for r in rows] == list(SWEEP)
    for r in rows:
        want_s, want_t = float(r[1]), float(r[4])
        assert want_s == 1500 + int(r[0]) / 2 and want_t == 1500 - int(r[0]) / 2
        assert all(abs(float(v) - want_s) <= 1.0 for v in r[2:4]) and all(abs(float(v) - want_t) <= 1.0 for v in r[5:7])
    neutral_ms = float(re.search(r"ESC at neutral on the pin (\d+\.\d+) ms", out).group(1))
    assert 250.0 <= neutral_ms <= 271.0
    assert re.search(r"command -> pulse \(last byte in .*median \d+\.\d+ ms", out)
