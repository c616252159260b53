"""Stand-in policies for dry runs, tests and benchmarks of the runtime (no model needed).

``edgeact run --model fake[:LATENCY_MS[:BUSY]]`` uses :class:`FakePolicy`: each inference
takes ``latency_ms`` (default 40, about an int8 ACT on a Pi 5's CPU), ``busy`` of it (default
0.75) burning CPU in numpy with the GIL released, as onnxruntime does, and the rest asleep.
Its chunk steers gently left and right and keeps a small throttle: it does not drive the
track, it exercises the timing, the scheduler and the safety paths.
"""

from __future__ import annotations

import time

import numpy as np

from edgeact.errors import ConfigError
from edgeact.policy import PolicySpec

DEFAULT_SPEC = PolicySpec(camera_names=("cam_front",), image_size=(360, 640), state_dim=2, action_dim=2,
                          chunk_size=100, fps=30.0)


def burn_cpu(seconds: float, buf: np.ndarray | None = None) -> None:
    """Keep one core busy for ``seconds`` in numpy ufuncs (which release the GIL)."""
    if buf is None:
        buf = np.linspace(0.0, 1.0, 65536, dtype=np.float32)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        np.sin(buf, out=buf)
        np.add(buf, 0.5, out=buf)


class FakePolicy:
    """A Backend: fixed latency, a smooth chunk, optional failure after N calls."""

    def __init__(self, spec: PolicySpec = DEFAULT_SPEC, latency_s: float = 0.04, busy: float = 0.75,
                 throttle: float = 0.3, fail_after: int | None = None, name: str = "fake") -> None:
        if latency_s < 0 or not 0.0 <= busy <= 1.0:
            raise ConfigError("fake policy: latency must be >= 0 and busy in [0, 1]")
        self.name = name
        self.spec = spec
        self.latency_s = latency_s
        self.busy = busy
        self.throttle = throttle
        self.fail_after = fail_after
        self.calls = 0
        self.last_state: np.ndarray | None = None
        self._scratch = np.linspace(0.0, 1.0, 65536, dtype=np.float32)

    def predict_chunk(self, image, state) -> np.ndarray:
        self.spec.check_inputs(image, state)
        self.calls += 1
        self.last_state = np.asarray(state, dtype=np.float32).copy()
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError(f"fake backend failure (call {self.calls})")
        t0 = time.perf_counter()
        burn_cpu(self.latency_s * self.busy, self._scratch)
        rest = self.latency_s - (time.perf_counter() - t0)
        if rest > 0:
            time.sleep(rest)
        n, a = self.spec.chunk_size, self.spec.action_dim
        phase = time.monotonic()
        k = np.arange(n, dtype=np.float32) / self.spec.fps
        out = np.zeros((n, a), dtype=np.float32)
        out[:, 0] = 0.5 * np.sin(2 * np.pi * 0.25 * (phase + k))
        if a > 1:
            out[:, 1] = self.throttle
        return out

    def close(self) -> None:
        pass


def parse_fake(spec: str) -> FakePolicy:
    """``fake``, ``fake:40`` (ms), ``fake:40:0.75`` (ms, busy fraction)."""
    parts = spec.split(":")
    try:
        latency_ms = float(parts[1]) if len(parts) > 1 and parts[1] else 40.0
        busy = float(parts[2]) if len(parts) > 2 and parts[2] else 0.75
    except ValueError as err:
        raise ConfigError(f"fake model spec {spec!r}: use fake[:LATENCY_MS[:BUSY_FRACTION]]") from err
    return FakePolicy(DEFAULT_SPEC, latency_s=latency_ms / 1e3, busy=busy)
