"""The simulator as the runtime's camera: the simulated rover in closed loop, rendered live.

It plugs into the runtime through :class:`edgeact.runtime.interfaces.Camera` (the simulator
depends on the runtime's interface, never the reverse); :func:`edgeact.drive.open_parts`
connects its controls to the actuator.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from edgeact.errors import ConfigError
from edgeact.runtime.cameras import ThreadedCamera
from edgeact.sim.world import RoverSim

log = logging.getLogger("edgeact.sim")

Controls = Callable[[], "tuple[float, float]"]  # () -> (steering, throttle) in [-1, 1]


class SimCamera(ThreadedCamera):
    """Closed loop with the simulator: one thread steps the rover's physics in real time at
    ``physics_hz`` with ``controls()`` (the simulated Arduino's outputs) and renders a frame
    every 1/``fps`` s. All access to ``sim`` goes through ``self.lock``.

    ``controls()`` gives (steering, throttle) in [-1, 1]: an actuator's ``outputs``.
    """

    def __init__(self, sim: RoverSim, controls: Controls, fps: float = 30.0, physics_hz: float = 200.0,
                 **kw: Any) -> None:
        super().__init__(fps=None, **kw)  # the thread below does its own pacing
        if not fps > 0 or not physics_hz > 0:
            raise ConfigError("sim camera fps and physics rate must be positive")
        self.sim = sim
        self.controls = controls
        self.camera_fps = float(fps)
        self.physics_hz = float(physics_hz)
        self.lock = threading.Lock()
        self.name = "sim"
        self.physics_steps = 0
        self.sim_time_s = 0.0

    def _open(self) -> None:
        self.physics_steps = 0
        self.sim_time_s = 0.0
        with self.lock:
            self.sim.render()  # the first render builds the ground texture (~0.3 s): not in the loop

    def _run(self) -> None:
        dt = 1.0 / self.physics_hz
        frame_every = 1.0 / self.camera_fps
        t0 = time.monotonic()
        next_frame = t0
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                due = int((now - t0) * self.physics_hz) - self.physics_steps
                if due > 0:
                    s, th = self.controls()
                    with self.lock:
                        for _ in range(min(due, int(self.physics_hz))):  # at most 1 s of catch-up
                            self.sim.step(float(s), float(th), dt)
                    self.physics_steps += due
                    self.sim_time_s = self.physics_steps * dt
                if now >= next_frame:
                    g0 = time.monotonic()
                    with self.lock:
                        image = self.sim.render()
                    g1 = time.monotonic()
                    self._publish(np.ascontiguousarray(image), g1, g1 - g0)
                    next_frame += frame_every
                    if g1 - next_frame > frame_every:
                        next_frame = g1 + frame_every
                next_step = t0 + (self.physics_steps + 1) * dt
                wait = min(next_step, next_frame) - time.monotonic()
                if wait > 0:
                    self._stop.wait(wait)
        except Exception as err:  # noqa: BLE001 - the runtime reports it as a camera fault
            self.error = f"{type(err).__name__}: {err}"
            log.error("sim camera failed: %s", self.error)
        finally:
            with self._cond:
                self._cond.notify_all()

    def stats(self) -> dict[str, Any]:
        """Driving stats of the simulated rover (laps, off-track events, cross-track error)."""
        out: dict[str, Any] = {"sim_time_s": round(self.sim_time_s, 3), "physics_steps": self.physics_steps}
        with self.lock:
            out.update(self.sim.driving_stats())
        return out
