"""The simulator as the runtime's camera: physics stepped with the controls, frames rendered live."""

import threading

import numpy as np
import pytest

from edgeact.runtime.interfaces import Camera
from edgeact.sim.camera import SimCamera
from polling import wait_for


class StandInSim:
    """Records what the sim camera does to it."""

    def __init__(self):
        self.steps = []
        self.renders = 0
        self.in_use = threading.Lock()

    def step(self, steering, throttle, dt):
        assert self.in_use.acquire(blocking=False), "step and render overlapped"
        self.steps.append((steering, throttle, dt))
        self.in_use.release()

    def render(self):
        assert self.in_use.acquire(blocking=False), "step and render overlapped"
        self.renders += 1
        self.in_use.release()
        return np.full((24, 32, 3), self.renders % 256, np.uint8)

    def driving_stats(self):
        return {"laps": 0.0}


def test_sim_camera_steps_physics_with_the_controls_and_renders_frames():
    sim = StandInSim()
    cam = SimCamera(sim, controls=lambda: (0.5, 0.25), fps=30.0, physics_hz=200.0)
    assert isinstance(cam, Camera)
    cam.start()
    try:
        assert wait_for(lambda: cam.frames >= 3 and len(sim.steps) >= 20, 3.0)
    finally:
        cam.stop()
    assert all(s == (0.5, 0.25, pytest.approx(0.005)) for s in sim.steps)
    assert len(sim.steps) > cam.frames  # physics runs faster than the camera
    assert cam.latest().image.shape == (24, 32, 3)
    stats = cam.stats()
    assert stats["laps"] == 0.0 and stats["physics_steps"] >= 20
