"""Wiring a drive from CLI names: the simulator plugged into the runtime, the stop kinds."""

import threading

import numpy as np
import pytest

from edgeact.drive import Parts, drive, open_parts, open_policy, open_runtime
from edgeact.errors import ConfigError
from edgeact.runtime import NullActuator, ProcessConfig, ReplayCamera, RuntimeConfig, StopKind
from edgeact.runtime.interfaces import Actuator, Camera
from edgeact.sim.camera import SimCamera

QUIET = ProcessConfig(handle_signals=False, realtime=False)


def test_sim_camera_moves_with_the_simulated_arduinos_outputs():
    cam, act = open_parts(Parts(camera="sim:oval", actuator="sim"), (48, 64))
    assert isinstance(cam, SimCamera) and isinstance(cam, Camera) and isinstance(act, Actuator)
    act.start()
    cam.start()
    try:
        assert cam.wait_new(-1, 3.0).image.shape == (48, 64, 3)
        with cam.lock:
            x0 = cam.sim.pose
        for _ in range(40):  # 0.4 s of full throttle through the serial link
            act.send(0.0, 1.0)
            threading.Event().wait(0.01)
        with cam.lock:
            x1, speed = cam.sim.pose, cam.sim.speed
        assert speed > 0 and np.hypot(x1[0] - x0[0], x1[1] - x0[1]) > 0.01
    finally:
        act.stop()
        cam.stop()


def test_other_cameras_come_from_the_runtime(episode_dir):
    cam, act = open_parts(Parts(camera=f"replay:{episode_dir}", actuator="none"), (24, 32))
    assert isinstance(cam, ReplayCamera) and isinstance(act, NullActuator)
    with pytest.raises(ConfigError, match="unknown camera"):
        open_parts(Parts(camera="no/such/thing", actuator="none"), (24, 32))


def test_drive_reports_how_the_run_ended(episode_dir):
    policy = open_policy("fake:2:0")
    try:
        timed = drive(policy, Parts(camera="sim", actuator="none"), RuntimeConfig(duration_s=0.3, process=QUIET))
        ended = drive(policy, Parts(camera=f"replay:{episode_dir}", actuator="none"),
                      RuntimeConfig(duration_s=30.0, process=QUIET))
    finally:
        policy.close()
    assert timed.stop_kind is StopKind.DURATION and timed.stop_kind.normal and timed.sim["physics_steps"] > 0
    assert ended.stop_kind is StopKind.SOURCE_ENDED and ended.stop_kind.normal and ended.sim is None


def test_open_runtime_runs_in_the_background_until_stopped():
    policy = open_policy("fake:2:0")
    rt = open_runtime(policy, Parts(camera="sim", actuator="sim"), RuntimeConfig(rate_hz=50, process=QUIET))
    rt.start()
    try:
        assert not rt.wait(0.5) and rt.running
    finally:
        report = rt.stop("drive page: stop")
        policy.close()
    assert report.stop_kind is StopKind.REQUESTED and report.stop_reason == "drive page: stop"
    assert report.neutral_at_exit and report.arduino["outputs"] == (0.0, 0.0)
