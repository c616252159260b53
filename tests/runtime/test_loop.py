"""The runtime end to end with fake backends, replay/synthetic cameras and the simulated
Arduino over a real pty, and the fault drills. Timings are never asserted beyond generous
"eventually" bounds (the machine is shared); the figures are printed instead."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from runtime_fakes import ConstantBackend, FailingBackend, RampBackend, SyntheticCamera

from edgeact.runtime import (
    Limits,
    OutputConfig,
    ProcessConfig,
    Runtime,
    RuntimeConfig,
    SafetyConfig,
    StopKind,
    open_actuator,
    run_rover,
)
from edgeact.runtime.cameras import ReplayCamera
from polling import wait_for

SLACK = 1.5  # seconds added to every "neutral within period + watchdog" bound: a busy CI box stalls


def config(rate_hz: float = 50.0, duration_s: float | None = None, sync: bool = False, *,
           limits: Limits | None = None, handle_signals: bool = False, telemetry_path: str | None = None,
           plot_path: str | None = None, **safety: float) -> RuntimeConfig:
    """The tests' run: no realtime priority, signals only when asked, a 5 s start-up grace."""
    return RuntimeConfig(rate_hz=rate_hz, duration_s=duration_s, sync=sync, limits=limits or Limits(),
                         safety=SafetyConfig(**{"startup_grace_s": 5.0, **safety}),
                         process=ProcessConfig(handle_signals=handle_signals, realtime=False),
                         output=OutputConfig(telemetry_path=telemetry_path, plot_path=plot_path))


def driving(board) -> bool:
    return board.outputs[1] > 0.2


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_end_to_end_replay_fake_backend_sim_arduino(episode_dir, tmp_path):
    backend = ConstantBackend(steering=0.2, throttle=0.3, latency_s=0.01)
    act = open_actuator("sim", watchdog_s=0.25)
    cam = ReplayCamera(episode_dir, loop=True)
    tel, png = tmp_path / "run.jsonl", tmp_path / "run.png"
    report = run_rover(backend, cam, act, config(duration_s=1.5, telemetry_path=str(tel), plot_path=str(png)))
    board = act.sim
    print(report.format_table())
    assert report.stop_reason.startswith("duration") and report.mode == "async"
    assert report.stop_kind is StopKind.DURATION and report.to_dict()["stop_kind"] == "duration"
    assert report.ticks > 20 and report.chunks > 5 and report.inference_errors == 0
    st = report.actuator
    assert st["sent"] > 20 and st["acked"] >= st["sent"] - 2 and st["rx_rejected"] == 0
    last = board.drive_commands()[-1]
    assert (last.steering, last.throttle) == (0.2, 0.3)  # reached through the slew limit
    assert report.neutral_at_exit and board.outputs == (0.0, 0.0) and board.commands[-1].kind == "N"
    assert not board.entered_failsafe and report.faults == []
    # state convention: zeros first, then the command sent before
    assert np.allclose(backend.states[0], 0.0) and np.allclose(backend.states[-1], [0.2, 0.3])
    # telemetry: every stage, ticks, the summary; and the plot
    recs = records(tel)
    names = {r["name"] for r in recs if r["type"] == "stage"}
    assert {"capture", "frame_age", "preprocess", "inference"} <= names
    assert sum(r["type"] == "tick" for r in recs) == report.ticks
    assert recs[-1]["type"] == "summary" and recs[-1]["neutral_at_exit"] is True
    assert png.stat().st_size > 1000 and report.plot_path == str(png)
    for key in ("jitter_ms", "chunk_age_ms"):
        assert getattr(report, key)["n"] > 0
    assert "neutral at exit: yes" in report.format_table()


def test_actions_are_indexed_by_time_since_the_frame(tmp_path):
    tel = tmp_path / "t.jsonl"
    backend = RampBackend()  # step i of every chunk is steering i/10
    act = open_actuator("none")
    rep = run_rover(backend, SyntheticCamera(), act,
                    config(rate_hz=100.0, duration_s=0.8, limits=Limits(steering_rate=None, throttle_rate=None),
                           max_chunk_age_s=0.6, telemetry_path=str(tel)))
    ticks = [r for r in records(tel) if r["type"] == "tick" and not r["neutral"]]
    assert len(ticks) > 20 and rep.faults == []
    # each command is the chunk read at step (now - frame time) * fps, interpolated: steering = step / 10
    for r in ticks:
        assert r["steering"] == pytest.approx(max(r["step"], 0.0) / 10.0, abs=2e-3)
    steps = np.array([r["step"] for r in ticks])
    assert (np.abs(steps - np.round(steps)) > 0.05).any()  # fractional steps: 100 Hz between 30 fps steps


def test_fault_drill_serial_port_killed_mid_run(tmp_path):
    act = open_actuator("sim", watchdog_s=0.25)
    tel = tmp_path / "t.jsonl"
    rt = Runtime(ConstantBackend(latency_s=0.005), SyntheticCamera(), act, config(telemetry_path=str(tel)))
    rt.start()
    board = act.sim
    try:
        assert wait_for(lambda: driving(board), 5.0)
        t0 = time.monotonic()
        board.unplug()
        assert wait_for(lambda: board.outputs == (0.0, 0.0), 1 / 50 + 0.25 + SLACK)
        print(f"serial killed -> board neutral in {(time.monotonic() - t0) * 1e3:.0f} ms (bound 270 ms)")
        assert board.entered_failsafe  # the Pi could not reach it: the board's watchdog did it
        board.replug()  # the cable goes back: the runtime reopens the port and drives again
        assert wait_for(lambda: driving(board), 5.0)
    finally:
        report = rt.stop()
    print(report.format_table())
    lost = [f for f in report.faults if f["kind"] == "serial-lost"]
    assert lost and lost[0]["t_end"] is not None and "serial lost" in lost[0]["message"]
    assert report.actuator["lost_count"] >= 1 and report.actuator["reconnects"] >= 1
    assert report.neutral_at_exit and board.outputs == (0.0, 0.0)
    kinds = [(r["type"], r.get("kind")) for r in records(tel)]
    assert ("fault", "serial-lost") in kinds and ("cleared", "serial-lost") in kinds


def test_fault_drill_camera_stall():
    act = open_actuator("sim")
    cam = SyntheticCamera()
    rt = Runtime(ConstantBackend(latency_s=0.005), cam, act, config(camera_stall_s=0.2, max_chunk_age_s=0.5))
    rt.start()
    board = act.sim
    try:
        assert wait_for(lambda: driving(board), 5.0)
        t0 = time.monotonic()
        cam.stall()
        assert wait_for(lambda: board.outputs == (0.0, 0.0), 0.2 + 1 / 50 + 0.25 + SLACK)
        print(f"camera stalled -> board neutral in {(time.monotonic() - t0) * 1e3:.0f} ms (bound 200 + 20 ms)")
        assert board.commands[-1].kind == "N" and not board.entered_failsafe  # the Pi sent neutral itself
        cam.resume()
        assert wait_for(lambda: driving(board), 5.0)
    finally:
        report = rt.stop()
    stall = [f for f in report.faults if f["kind"] == "camera-stall"]
    assert stall and "no new frame" in stall[0]["message"] and stall[0]["t_end"] is not None
    assert report.neutral_at_exit


def test_fault_drill_backend_raises(tmp_path):
    act = open_actuator("sim")
    tel = tmp_path / "t.jsonl"
    backend = FailingBackend(ok_calls=8, latency_s=0.005)
    t0 = time.monotonic()
    report = run_rover(backend, SyntheticCamera(), act,
                       config(duration_s=10.0, max_backend_errors=3, telemetry_path=str(tel)))
    print(report.format_table())
    assert time.monotonic() - t0 < 9.0  # ended by the fault, not the duration
    assert report.stop_reason.startswith("backend failed 3 times in a row") and "fell off the bus" in report.stop_reason
    assert report.stop_kind is StopKind.FAULT
    assert "backend-error" in report.fault_kinds and report.inference_errors >= 3
    assert report.neutral_at_exit and act.sim.outputs == (0.0, 0.0)
    recs = records(tel)
    assert any(r["type"] == "fault" and r["kind"] == "backend-error" for r in recs)
    assert any(r["type"] == "event" and r["kind"] == "stop" and "backend failed" in r["message"] for r in recs)
    # neutral came within a tick of the first failure: no drive command after the fault started
    fault_t = next(r["t"] for r in recs if r["type"] == "fault")
    later = [r for r in recs if r["type"] == "tick" and r["t"] > fault_t]
    assert later and all(r["neutral"] for r in later)


def test_fault_drill_stale_chunks_from_a_slow_backend():
    act = open_actuator("none")
    report = run_rover(ConstantBackend(latency_s=0.35), SyntheticCamera(), act,
                       config(duration_s=1.5, max_chunk_age_s=0.2))
    assert "stale-chunk" in report.fault_kinds
    assert any("max age" in f["message"] for f in report.faults)
    assert report.neutral_ticks > 0 and report.neutral_at_exit


def test_fault_drill_sigint_stops_cleanly_in_the_main_thread():
    act = open_actuator("sim")
    board_ready = threading.Event()

    def interrupt():
        if wait_for(lambda: act.sim is not None and act.sim._thread is not None and driving(act.sim), 5.0):
            board_ready.set()
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    before = signal.getsignal(signal.SIGINT)
    report = run_rover(ConstantBackend(latency_s=0.005), SyntheticCamera(), act,
                       config(duration_s=10.0, handle_signals=True))
    assert board_ready.is_set()
    assert report.stop_reason == "SIGINT" and report.neutral_at_exit and act.sim.outputs == (0.0, 0.0)
    assert report.stop_kind is StopKind.REQUESTED
    assert signal.getsignal(signal.SIGINT) is before  # handlers restored


def test_emergency_stop_sigusr1_latches_neutral():
    act = open_actuator("sim")
    rt = Runtime(ConstantBackend(latency_s=0.005), SyntheticCamera(), act, config(handle_signals=True))
    rt.start()  # from the main thread: SIGUSR1 is the emergency stop
    board = act.sim
    try:
        assert wait_for(lambda: driving(board), 5.0)
        os.kill(os.getpid(), signal.SIGUSR1)
        assert wait_for(lambda: board.outputs == (0.0, 0.0), 1 / 50 + SLACK)
        n = len(board.commands)
        assert wait_for(lambda: len(board.commands) > n + 5, 2.0)  # the loop runs on, sending neutral...
        assert board.outputs == (0.0, 0.0) and rt.running  # ...and stays neutral: latched
    finally:
        report = rt.stop()
    assert "emergency-stop" in report.fault_kinds and "SIGUSR1" in report.faults[0]["message"]


def test_sync_mode_runs_capture_infer_act_per_tick():
    act = open_actuator("sim")
    backend = ConstantBackend(latency_s=0.03)
    report = run_rover(backend, SyntheticCamera(), act, config(rate_hz=100.0, duration_s=1.0, sync=True))
    print(report.format_table())
    assert report.mode == "sync" and report.chunks > 5
    assert report.missed_deadlines > 0  # 30 ms of inference per 10 ms tick: structurally late
    assert report.actuator["sent"] <= report.chunks  # one command per inference
    assert report.neutral_at_exit and np.allclose(backend.states[-1], [act.sim.drive_commands()[-2].steering,
                                                                       act.sim.drive_commands()[-2].throttle],
                                                  atol=1e-3)


def test_replay_end_stops_the_run(episode_dir):
    report = run_rover(ConstantBackend(), ReplayCamera(episode_dir), open_actuator("none"), config(duration_s=10.0))
    assert report.stop_reason == "camera source ended" and report.neutral_at_exit
    assert report.stop_kind is StopKind.SOURCE_ENDED


def test_cli_run_sigterm_in_a_subprocess(tmp_path):
    pytest.importorskip("edgeact.sim.world")
    tel = tmp_path / "cli.jsonl"
    src = Path(__file__).resolve().parents[2] / "src"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    cmd = [sys.executable, "-c", "import sys; from edgeact.commands.run import main; sys.exit(main())",
           "--checkpoint", "fake:5:0", "--camera_id", "sim", "--arduino_port", "sim", "--rate", "50",
           "--telemetry", str(tel), "--no-plot", "--no-keys", "--status", "0"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ok = wait_for(lambda: tel.exists() and '"drive' not in "" and tel.read_text().count('"tick"') > 20
                      and '"neutral": false' in tel.read_text(), 20.0, interval=0.05)
        assert ok, proc.stderr.read() if proc.poll() is not None else "no ticks"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped: SIGTERM" in out and "neutral at exit: yes" in out
    recs = records(tel)
    assert any(r["type"] == "event" and r["kind"] == "stop" and r["message"] == "SIGTERM" for r in recs)
    summary = recs[-1]
    assert summary["type"] == "summary" and summary["arduino"]["outputs"] == [0.0, 0.0]


def test_camera_failure_is_a_fault_that_ends_the_run():
    class Unplugged(SyntheticCamera):
        def _grab(self):
            if self._n >= 10:
                raise OSError("camera unplugged")
            return super()._grab()

    act = open_actuator("sim")
    report = run_rover(ConstantBackend(latency_s=0.005), Unplugged(), act, config(duration_s=10.0))
    assert report.stop_reason.startswith("camera failed: OSError: camera unplugged")
    assert report.stop_kind is StopKind.FAULT
    assert "camera-error" in report.fault_kinds and report.neutral_at_exit and act.sim.outputs == (0.0, 0.0)
