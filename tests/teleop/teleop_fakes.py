"""Stand-ins for the drive tests: a frame source and an executed-command feed."""

from __future__ import annotations

import numpy as np

from edgeact.runtime.cameras import Camera
from edgeact.teleop.pilot import Executed


class CountingCamera(Camera):
    """Frames at ``fps`` whose pixels encode their index (so a test can tell them apart)."""

    name = "counting"

    def __init__(self, fps: float = 60.0, size: tuple[int, int] = (24, 32)) -> None:
        super().__init__(fps=fps)
        self.size = size
        self._n = 0

    def _grab(self):
        self._n += 1
        return np.full((*self.size, 3), self._n % 256, dtype=np.uint8)


class Feed:
    """What the control loop last executed, as the test sets it."""

    def __init__(self) -> None:
        self.value = Executed(0.0, 0.0, 0.0, True, "", False)

    def set(self, steering: float, throttle: float, intervention: bool = False) -> None:
        self.value = Executed(0.0, steering, throttle, False, "", intervention)

    def __call__(self) -> Executed:
        return self.value
