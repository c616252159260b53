"""RoverSim: the rover on a track, its camera, and the driving statistics.

This API is shared with the runtime (a simulated camera and actuator drive it), keep it::

    sim = RoverSim(track="oval", image_size=(360, 640), seed=0, randomize=True)
    sim.reset(seed=None)
    sim.step(steering, throttle, dt)      # commands in [-1, 1], dt seconds
    frame = sim.render()                  # HxWx3 uint8 RGB from the rover's camera
    sim.pose, sim.speed, sim.cross_track_m, sim.laps, sim.off_track, sim.off_track_events,
    sim.trajectory, sim.track

No module-level state: one ``RoverSim`` per thread of use, or ``step`` and ``render`` from
two threads under one lock held by the caller. The ground texture is built lazily on the
first ``render`` after a reset, so driving without a camera costs nothing.
"""

from __future__ import annotations

import math

import numpy as np

from edgeact.errors import ConfigError
from edgeact.sim.render import Appearance, Renderer
from edgeact.sim.rover import Rover, RoverParams
from edgeact.sim.track import LapCounter, Track, make_track


class RoverSim:
    def __init__(
        self,
        track: str = "oval",
        image_size: tuple[int, int] = (360, 640),
        seed: int = 0,
        randomize: bool = True,
        rover: RoverParams | None = None,
    ) -> None:
        self.track: Track = make_track(track) if isinstance(track, str) else track
        h, w = (int(v) for v in image_size)
        if h < 8 or w < 8:
            raise ConfigError(f"image_size {image_size} is too small; use at least 8x8 (e.g. 96x128)")
        self.image_size = (h, w)
        self.seed = int(seed)
        self.randomize = bool(randomize)
        self.rover = Rover(rover)
        self._renderer: Renderer | None = None
        self._appearance_seed: int | None = None
        self.reset(seed)

    # ------------------------------------------------------------------ episode control
    def reset(
        self,
        seed: int | None = None,
        *,
        start_s: float = 0.0,
        lateral_m: float = 0.0,
        heading_offset_rad: float = 0.0,
        speed: float = 0.0,
    ) -> None:
        """Put the rover back on the track and clear the statistics.

        ``seed``: a new appearance seed (with ``randomize``); None keeps the current one.
        The rover starts at arc length ``start_s`` on the centre line (offset ``lateral_m``
        to the left, heading ``heading_offset_rad`` from the track direction).
        """
        if seed is not None:
            self.seed = int(seed)
        x, y, heading = self.track.point_at(start_s)
        x -= lateral_m * math.sin(heading)
        y += lateral_m * math.cos(heading)
        self.rover.reset(x, y, heading + heading_offset_rad, speed)
        self.time = 0.0
        proj = self.track.project(x, y)
        self._proj = proj
        self._laps = LapCounter(self.track, proj.s)
        self.off_track = abs(proj.cross_track) > self.track.width / 2
        self.off_track_events = 1 if self.off_track else 0
        self.trajectory: list[tuple[float, float, float]] = [(0.0, x, y)]
        self.steps = 0

    def step(self, steering: float, throttle: float, dt: float) -> None:
        """Apply commands (clamped to [-1, 1]; NaN counts as 0) for ``dt`` seconds."""
        self.rover.step(steering, throttle, dt)
        self.time += dt
        self.steps += 1
        st = self.rover.state
        self._proj = self.track.project(st.x, st.y, hint=self._proj.index)
        self._laps.update(self._proj.s)
        off = abs(self._proj.cross_track) > self.track.width / 2
        if off and not self.off_track:
            self.off_track_events += 1
        self.off_track = off
        self.trajectory.append((self.time, st.x, st.y))

    # ------------------------------------------------------------------ camera
    @property
    def renderer(self) -> Renderer:
        if self._renderer is None:
            self._renderer = Renderer(self.track, self.image_size)
        if self._appearance_seed != self.seed or self._renderer.texture is None:
            self._renderer.set_appearance(self.seed, self.randomize)
            self._appearance_seed = self.seed
        return self._renderer

    @property
    def appearance(self) -> Appearance:
        appearance = self.renderer.appearance
        assert appearance is not None  # .renderer sets it
        return appearance

    def render(self, out: np.ndarray | None = None) -> np.ndarray:
        """The rover's front camera: HxWx3 uint8 RGB."""
        st = self.rover.state
        return self.renderer.render(st.x, st.y, st.yaw, out=out)

    # ------------------------------------------------------------------ state
    @property
    def pose(self) -> tuple[float, float, float]:
        st = self.rover.state
        return (st.x, st.y, st.yaw)

    @property
    def speed(self) -> float:
        return self.rover.state.speed

    @property
    def cross_track_m(self) -> float:
        """Signed distance of the rover's centre from the centre line, > 0 to the left."""
        return self._proj.cross_track

    @property
    def progress_s(self) -> float:
        """Arc length of the rover's projection on the centre line, metres."""
        return self._proj.s

    @property
    def progress_m(self) -> float:
        """Distance driven along the track direction since reset (negative if backwards)."""
        return self._laps.progress_m

    @property
    def laps(self) -> float:
        """Laps completed along the track direction since reset (fractional)."""
        return self._laps.laps

    def driving_stats(self) -> dict[str, float | int | bool]:
        """Laps, off-track state and events, cross-track error and speed now, for a run's report."""
        return {"laps": self.laps, "off_track": self.off_track, "off_track_events": self.off_track_events,
                "cross_track_m": self.cross_track_m, "speed": self.speed}

    @property
    def projection(self):
        return self._proj
