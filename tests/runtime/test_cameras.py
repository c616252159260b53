import threading

import numpy as np
import pytest

from edgeact.errors import ConfigError
from edgeact.runtime.cameras import (
    CameraError,
    OpenCVCamera,
    Picamera2Camera,
    ReplayCamera,
    SimCamera,
    open_camera,
)
from edgeact.runtime.safety import wait_for


def test_replay_plays_the_episode_in_order_then_ends(episode_dir):
    cam = ReplayCamera(episode_dir, fps=200.0)  # faster than the episode's 30 fps to keep the test short
    cam.start()
    try:
        seen = []
        f = cam.wait_new(-1, 2.0)
        while f is not None:
            seen.append(f.index)
            assert f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8
            f = cam.wait_new(f.index, 2.0)
        assert cam.finished and seen[-1] == 11 and seen == sorted(seen)
    finally:
        cam.stop()


def test_replay_uses_the_episode_fps_and_accepts_a_parent_directory(episode_dir):
    cam = open_camera(f"replay:{episode_dir.parent}")
    assert isinstance(cam, ReplayCamera)
    cam._open()
    assert cam.fps == 30.0 and len(cam._files) == 12
    assert isinstance(open_camera(str(episode_dir)), ReplayCamera)  # a directory needs no prefix


def test_video_file_camera_is_rgb(tmp_path):
    import cv2

    path = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (64, 48))
    for _ in range(5):
        w.write(np.full((48, 64, 3), (255, 0, 0), np.uint8))  # BGR blue
    w.release()
    cam = open_camera(str(path))
    assert isinstance(cam, OpenCVCamera)
    cam.start()
    try:
        f = cam.wait_new(-1, 2.0)
        assert f is not None and f.image[..., 2].mean() > 200 and f.image[..., 0].mean() < 50  # blue in RGB
        assert wait_for(lambda: cam.finished, 3.0)
    finally:
        cam.stop()


def test_camera_errors_are_clear():
    try:
        import picamera2  # noqa: F401
    except ImportError:
        with pytest.raises(CameraError, match="picamera2 is not installed"):
            Picamera2Camera().start()
    assert isinstance(open_camera("picamera2:1"), Picamera2Camera)
    assert isinstance(open_camera("0"), OpenCVCamera) and isinstance(open_camera(3), OpenCVCamera)
    with pytest.raises(ConfigError, match="unknown camera"):
        open_camera("no/such/thing")
    with pytest.raises(ConfigError, match="controls"):
        open_camera("sim")
    with pytest.raises(CameraError, match="does not exist"):
        ReplayCamera("/no/such/dir").start()


class StandInSim:
    """Records what the sim camera does to it."""

    def __init__(self):
        self.steps = []
        self.renders = 0
        self.in_use = threading.Lock()
        self.laps = 0.0

    def step(self, steering, throttle, dt):
        assert self.in_use.acquire(blocking=False), "step and render overlapped"
        self.steps.append((steering, throttle, dt))
        self.in_use.release()

    def render(self):
        assert self.in_use.acquire(blocking=False), "step and render overlapped"
        self.renders += 1
        self.in_use.release()
        return np.full((24, 32, 3), self.renders % 256, np.uint8)


def test_sim_camera_steps_physics_with_the_controls_and_renders_frames():
    sim = StandInSim()
    cam = SimCamera(sim, controls=lambda: (0.5, 0.25), fps=30.0, physics_hz=200.0)
    cam.start()
    try:
        assert wait_for(lambda: cam.frames >= 3 and len(sim.steps) >= 20, 3.0)
    finally:
        cam.stop()
    assert all(s == (0.5, 0.25, pytest.approx(0.005)) for s in sim.steps)
    assert len(sim.steps) > cam.frames  # physics runs faster than the camera
    assert cam.latest().image.shape == (24, 32, 3)
    assert cam.stats()["laps"] == 0.0


def test_sim_camera_closed_loop_with_the_real_simulator_and_sim_arduino():
    pytest.importorskip("edgeact.sim.world")
    from edgeact.runtime.actuators import open_actuator

    act = open_actuator("sim")
    cam = open_camera("sim:oval", image_size=(48, 64), controls=lambda: act.sim.outputs)
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
