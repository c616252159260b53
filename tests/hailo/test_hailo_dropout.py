"""The drop-out drill: a Hailo device that stops answering mid-drive (HAILO_COMMUNICATION_CLOSED, or a
run that hangs until HailoRT's timeout), through the real runtime, HailoBackend and the HailoRT double.

Bounds are proven on the telemetry, counting ticks (no wall-clock assertions): after the loss no tick
drives until the device is back and has given a fresh chunk (or, with ``--fallback``, the CPU model
has); a hang is caught by the stale-chunk bound; a device that never comes back ends the run with
StopKind.DEVICE_LOST. Figures are printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hailohelpers import compiled_copy

import edgeact
from edgeact.backends.hailo_backend import HailoBackend
from edgeact.runtime import OutputConfig, ProcessConfig, Runtime, RuntimeConfig, SafetyConfig, StopKind, open_actuator
from edgeact.runtime.cameras import ReplayCamera
from edgeact.runtime.recovery import RecoveringBackend, RecoveryConfig
from polling import wait_for

RATE_HZ = 50.0
PERIOD_S = 1 / RATE_HZ


@pytest.fixture(scope="module")
def split_bundle(hailo_exported, tmp_path_factory):
    return compiled_copy(hailo_exported, tmp_path_factory, [("split", "hailo8l", "a8_w8")])


def drill(bundle, episodes, hp, tmp_path, *, fallback=None, attempts=3, backoff_s=0.05, max_chunk_age_s=0.5,
          after_loss=None, duration_s=30.0):
    """Drive until the policy drives, drop the device, then run ``after_loss(rt)`` (a wait); returns
    (report, telemetry records)."""
    tel = tmp_path / "run.jsonl"
    spare = edgeact.load_policy(str(bundle), backend=fallback) if fallback else None
    backend = RecoveringBackend(HailoBackend(bundle, "hailo-split"), spare,
                                RecoveryConfig(attempts=attempts, backoff_s=backoff_s, max_backoff_s=2 * backoff_s))
    config = RuntimeConfig(rate_hz=RATE_HZ, duration_s=duration_s,
                           safety=SafetyConfig(startup_grace_s=5.0, max_chunk_age_s=max_chunk_age_s),
                           process=ProcessConfig(handle_signals=False, realtime=False),
                           output=OutputConfig(telemetry_path=str(tel)))
    rt = Runtime(backend, ReplayCamera(episodes, loop=True), open_actuator("none"), config)
    rt.start()
    try:
        assert wait_for(lambda: rt.source.chunks >= 3 and rt.telemetry.tick_neutral[-1] == 0, 20.0)
        hp.device.drop_after = hp.device.runs  # the next run finds the device gone
        after_loss(rt)
    finally:
        report = rt.stop()
        backend.close()
    records = [json.loads(line) for line in Path(tel).read_text().splitlines()]
    return report, records


def event_t(records, kind):
    return next(r["t"] for r in records if r["type"] == "event" and r["kind"] == kind)


def ticks(records, after, before=float("inf")):
    return [r for r in records if r["type"] == "tick" and after < r["t"] <= before]


def test_neutral_within_a_tick_then_the_device_is_back_and_drives_on_fresh_chunks(
        split_bundle, episodes, hailort, tmp_path):
    hp = hailort()
    hp.device.reopen_failures = 2  # two reopen attempts fail, the third works
    report, records = drill(split_bundle, episodes, hp, tmp_path,
                            after_loss=lambda rt: wait_for(lambda: rt.backend.reopened >= 1 and rt.source.chunks
                                                           > rt.backend.stats()["reopened"] + 10, 20.0))
    print(report.format_table())
    lost, back = event_t(records, "device-lost"), event_t(records, "device-reopened")
    away = ticks(records, lost, back)
    driving_while_away = [r for r in away if not r["neutral"]]
    # the tick that raced the failed inference may still drive; from the next one on, every tick is neutral
    assert len(driving_while_away) <= 1 and all(r["t"] <= lost + PERIOD_S for r in driving_while_away)
    assert len(away) >= 5 and all("backend-error" in r.get("why", "") or "stale-chunk" in r.get("why", "")
                                  for r in away if r["neutral"])
    after = [r for r in ticks(records, back) if not r["neutral"]]
    assert after and all(r["chunk_age_ms"] <= 500 for r in after)  # drives again, on fresh chunks only
    kinds = [r["kind"] for r in records if r["type"] == "event" and r["kind"].startswith("device-")]
    assert kinds == ["device-lost", "device-reopen", "device-reopen-failed", "device-reopen", "device-reopen-failed",
                     "device-reopen", "device-reopened"]
    faults = [f for f in report.faults if f["kind"] == "backend-error"]
    assert faults and faults[0]["t_end"] is not None  # the fault cleared when the device answered
    assert report.device["reopened"] == 1 and report.device["failed_attempts"] == 2
    assert report.stop_kind is StopKind.REQUESTED and report.neutral_at_exit
    print(f"neutral bound: {len(driving_while_away)} driving tick(s) after the loss (bound 1 = {PERIOD_S * 1e3:.0f} "
          f"ms); device back after {back - lost:.2f} s ({len(away)} neutral ticks at {RATE_HZ:g} Hz), schedule "
          f"{RecoveryConfig(attempts=3, backoff_s=0.05, max_backoff_s=0.1).delays()} s")


def test_a_device_that_does_not_come_back_stops_the_run_with_device_lost(split_bundle, episodes, hailort, tmp_path):
    hp = hailort()
    hp.device.reopen_failures = 10**9
    report, records = drill(split_bundle, episodes, hp, tmp_path,
                            after_loss=lambda rt: wait_for(lambda: not rt.running or rt.wait(0.01), 20.0))
    print(report.format_table())
    lost, gave_up = event_t(records, "device-lost"), event_t(records, "device-gave-up")
    assert report.stop_kind is StopKind.DEVICE_LOST and not report.stop_kind.normal
    assert "did not come back after 3 reopen attempts" in report.stop_reason
    assert len([r for r in ticks(records, lost) if not r["neutral"]]) <= 1
    assert report.neutral_at_exit and report.device["gave_up"] and report.device["failed_attempts"] == 3
    assert report.duration_s < 30.0 and gave_up > lost
    assert "device: gave-up" in report.format_table()


def test_with_a_cpu_fallback_the_rover_drives_while_the_npu_is_away(split_bundle, episodes, hailort, tmp_path):
    hp = hailort()
    hp.device.reopen_failures = 4
    report, records = drill(split_bundle, episodes, hp, tmp_path, fallback="onnx", attempts=6, backoff_s=0.1,
                            after_loss=lambda rt: wait_for(lambda: rt.backend.reopened >= 1, 20.0))
    print(report.format_table())
    lost, back = event_t(records, "device-lost"), event_t(records, "device-reopened")
    away = ticks(records, lost, back)
    first_driving = next(i for i, r in enumerate(away) if not r["neutral"] and r["t"] > lost + PERIOD_S)
    assert first_driving >= 1 and all(r["neutral"] for r in away[1:first_driving])  # neutral until the CPU's chunk
    assert sum(not r["neutral"] for r in away) > len(away) // 2  # then it drives on the CPU model
    assert report.device["fallback_chunks"] > 0 and report.device["fallback"] == "onnx"
    kinds = [r["kind"] for r in records if r["type"] == "event" and r["kind"] in ("fallback-start", "fallback-stop")]
    assert kinds == ["fallback-start", "fallback-stop"]
    print(f"with fallback: {first_driving} neutral tick(s) after the loss, then {sum(not r['neutral'] for r in away)}"
          f" of {len(away)} ticks driven on the CPU while the NPU was away ({back - lost:.2f} s)")


def test_a_hung_device_is_caught_by_the_stale_chunk_bound(split_bundle, episodes, hailort, tmp_path):
    hp = hailort()
    hp.device.hang_s = 0.6  # the run blocks, then HAILO_TIMEOUT; the chunk in hand ages meanwhile
    max_age = 0.2
    report, records = drill(split_bundle, episodes, hp, tmp_path, max_chunk_age_s=max_age,
                            after_loss=lambda rt: wait_for(lambda: rt.backend.reopened >= 1, 20.0))
    driving = [r for r in records if r["type"] == "tick" and not r["neutral"]]
    assert driving and all(r["chunk_age_ms"] <= max_age * 1e3 for r in driving)  # never drove on a stale chunk
    assert "stale-chunk" in report.fault_kinds  # neutral came from the age bound, before HailoRT gave up
    stale = next(f for f in report.faults if f["kind"] == "stale-chunk")
    assert stale["t_start"] < event_t(records, "device-lost")


def test_open_policy_wraps_a_hailo_backend_and_takes_a_cpu_fallback(split_bundle, hailort):
    from edgeact.drive import open_policy
    from edgeact.errors import ConfigError

    hailort()
    policy = open_policy(str(split_bundle), "hailo-split", threads=1, fallback="onnx",
                         recovery=RecoveryConfig(attempts=2))
    try:
        assert isinstance(policy, RecoveringBackend) and policy.fallback.name == "onnx"
        assert policy.config.attempts == 2 and policy.spec == policy.primary.spec
    finally:
        policy.close()
    with pytest.raises(ConfigError, match="--fallback onnx-int8 backs up an accelerator"):
        open_policy(str(split_bundle), "onnx", threads=1, fallback="onnx-int8")
