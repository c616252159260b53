"""Stand-ins for the drive tests: a frame source, an executed-command feed, a test run's settings."""

from __future__ import annotations

import numpy as np

from edgeact.runtime.cameras import ThreadedCamera
from edgeact.runtime.config import ProcessConfig, RuntimeConfig
from edgeact.runtime.limits import Limits
from edgeact.teleop.pilot import Executed


def quiet_runtime(rate_hz: float = 50.0, max_throttle: float = 1.0, slew: bool = True, **kw) -> RuntimeConfig:
    """A run that leaves the test process alone: no signal handlers, no SCHED_FIFO, no terminal keys."""
    limits = Limits(max_throttle=max_throttle) if slew else Limits(max_throttle, None, None)
    return RuntimeConfig(rate_hz=rate_hz, limits=limits,
                         process=ProcessConfig(handle_signals=False, realtime=False, keyboard=False), **kw)


class CountingCamera(ThreadedCamera):
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
