"""Telemetry on its own: what it records, the JSON lines it streams, the report it builds."""

from __future__ import annotations

import json
import math

import pytest

from edgeact.runtime.safety import FaultRecord
from edgeact.runtime.telemetry import RunFacts, StopKind, Telemetry, stats_ms


class Clock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def facts(**kw) -> RunFacts:
    base = dict(mode="async", backend="fake", rate_hz=100.0, duration_s=0.05, missed_deadlines=1, skipped_slots=0,
                chunks=3, inference_errors=0, neutral_ticks=1, actuator={"port": "none", "sent": 4},
                faults=[], stop_reason="duration 0.05 s reached", stop_kind=StopKind.DURATION, neutral_at_exit=True)
    return RunFacts(**{**base, **kw})


def test_stats_ms_ignores_non_finite_values():
    assert stats_ms([]) == {"n": 0}
    s = stats_ms([0.010, float("nan"), 0.030, float("inf")])
    assert s["n"] == 2 and s["mean"] == pytest.approx(20.0) and s["max"] == pytest.approx(30.0)


def test_ticks_stages_and_events_stream_as_json_lines(tmp_path):
    clock = Clock()
    tel = Telemetry(tmp_path / "run.jsonl", clock=clock)
    tel.start()
    tel.tick(100.010, 0.0002, 0.010, False, 0.25, 0.5, False, 0.040, 0.0003, step=1.2)
    tel.tick(100.020, 0.0061, 0.010, True, 0.0, 0.0, True, float("nan"), 0.0002, why="stale-chunk: old")
    tel.stage("inference", 100.015, 0.021)
    clock.t = 100.5
    tel.event("fault", "serial-lost", "port gone")
    tel.write({"type": "summary", "ok": True})
    tel.stop()
    recs = [json.loads(line) for line in (tmp_path / "run.jsonl").read_text().splitlines()]
    assert [r["type"] for r in recs] == ["tick", "tick", "stage", "fault", "summary"]
    first, second = recs[0], recs[1]
    assert first["t"] == pytest.approx(0.010) and first["steering"] == 0.25 and first["chunk_age_ms"] == 40.0
    assert "why" not in first and second["why"] == "stale-chunk: old"
    assert second["missed"] and second["neutral"] and second["chunk_age_ms"] is None  # NaN is written as null
    assert recs[2] == {"type": "stage", "t": 0.015, "name": "inference", "ms": 21.0}
    assert recs[3]["t"] == 0.5 and recs[3]["kind"] == "serial-lost"
    assert len(tel.tick_t) == 2 and list(tel.stage_values("inference")) == [0.021]


def test_without_a_path_it_records_in_memory_only(tmp_path):
    tel = Telemetry(None, clock=Clock())
    tel.start()
    tel.tick(100.01, 0.0, 0.01, False, 0.1, 0.2, False, 0.03, 0.0)
    tel.stop()
    assert len(tel.tick_t) == 1 and list(tmp_path.iterdir()) == []


def test_report_is_built_from_what_was_recorded():
    tel = Telemetry(None, clock=Clock(100.0))
    tel.start()
    for i, period in enumerate([0.010, 0.012, 0.009]):
        tel.tick(100.0 + 0.01 * (i + 1), 0.0, period, False, 0.1, 0.2, False, 0.02 + 0.01 * i, 0.0001)
    tel.stage("inference", 100.0, 0.020)
    fault = FaultRecord("camera-error", "camera failed: unplugged", 100.02, None)
    report = tel.build_report(facts(faults=[fault], stop_kind=StopKind.FAULT, stop_reason="camera failed"))
    assert report.ticks == 3 and report.missed_deadlines == 1
    assert report.jitter_ms["max"] == pytest.approx(2.0) and report.period_ms["mean"] == pytest.approx(31 / 3)
    assert report.chunk_age_ms["p50"] == pytest.approx(30.0)
    assert report.stages_ms["inference"]["n"] == 1 and report.stages_ms["capture"] == {"n": 0}
    assert report.faults == [{"kind": "camera-error", "message": "camera failed: unplugged", "t_start": 0.02,
                              "t_end": None}]
    assert report.stop_kind is StopKind.FAULT and not report.stop_kind.normal
    as_json = json.loads(json.dumps(report.to_dict()))
    assert as_json["stop_kind"] == "fault" and as_json["faults"][0]["kind"] == "camera-error"
    table = report.format_table()
    assert "stopped: camera failed" in table and "camera-error: camera failed: unplugged" in table


def test_recent_gives_the_status_line_figures():
    tel = Telemetry(None, clock=Clock())
    rate, inference_s, age_s = tel.recent()
    assert rate == 0.0 and math.isnan(inference_s) and math.isnan(age_s)
    for i in range(10):
        tel.tick(100.0 + i * 0.02, 0.0, 0.02, False, 0.0, 0.0, False, 0.05, 0.0)
    tel.stage("inference", 100.0, 0.030)
    rate, inference_s, age_s = tel.recent()
    assert rate == pytest.approx(50.0) and inference_s == pytest.approx(0.030) and age_s == pytest.approx(0.05)
