"""Small stand-ins for the runtime tests: fake backends and a stallable camera."""

from __future__ import annotations

import threading
import time

import numpy as np

from edgeact.policy import PolicySpec
from edgeact.runtime.cameras import ThreadedCamera

SPEC = PolicySpec(camera_names=("cam_front",), image_size=(24, 32), state_dim=2, action_dim=2, chunk_size=20, fps=30.0)


class ConstantBackend:
    """Returns the same chunk every time (optionally after sleeping); records the states it saw."""

    name = "constant"

    def __init__(self, steering=0.2, throttle=0.3, latency_s=0.0, spec=SPEC):
        self.spec = spec
        self.steering, self.throttle, self.latency_s = steering, throttle, latency_s
        self.calls = 0
        self.states: list[np.ndarray] = []
        self.closed = False

    def predict_chunk(self, image, state):
        self.spec.check_inputs(image, state)
        self.calls += 1
        self.states.append(np.asarray(state, dtype=np.float32).copy())
        if self.latency_s:
            time.sleep(self.latency_s)
        out = np.empty((self.spec.chunk_size, self.spec.action_dim), np.float32)
        out[:, 0] = self.steering
        out[:, 1] = self.throttle
        return out

    def close(self):
        self.closed = True


class RampBackend(ConstantBackend):
    """Chunk whose step i is (i/10, 0.1) : a time-varying chunk to check the indexing."""

    name = "ramp"

    def predict_chunk(self, image, state):
        super().predict_chunk(image, state)
        n = self.spec.chunk_size
        out = np.zeros((n, 2), np.float32)
        out[:, 0] = np.arange(n) / 10.0
        out[:, 1] = 0.1
        return out


class FailingBackend(ConstantBackend):
    """Works ``ok_calls`` times, then raises on every call."""

    name = "failing"

    def __init__(self, ok_calls=5, **kw):
        super().__init__(**kw)
        self.ok_calls = ok_calls

    def predict_chunk(self, image, state):
        if self.calls >= self.ok_calls:
            self.calls += 1
            raise RuntimeError("accelerator fell off the bus")
        return super().predict_chunk(image, state)


class SyntheticCamera(ThreadedCamera):
    """Generated frames at ``fps``; ``stall()`` stops new frames without ending the source."""

    name = "synthetic"

    def __init__(self, fps=30.0, size=(48, 64), **kw):
        super().__init__(fps=fps, **kw)
        self.size = size
        self._stalled = threading.Event()
        self._n = 0

    def stall(self):
        self._stalled.set()

    def resume(self):
        self._stalled.clear()

    def _grab(self):
        while self._stalled.is_set() and not self._stop.is_set():
            time.sleep(0.005)
        self._n += 1
        img = np.zeros((*self.size, 3), np.uint8)
        img[..., 0] = self._n % 256
        return img
