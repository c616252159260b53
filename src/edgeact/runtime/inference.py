"""The inference activity: newest frame → preprocess → backend → chunk stamped with the frame's time."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

import numpy as np

from edgeact.runtime.cameras import Camera, Frame
from edgeact.runtime.preprocess import fit_frame
from edgeact.runtime.scheduler import Chunk, ChunkScheduler

log = logging.getLogger("edgeact.runtime")


def run_inference(backend, frame: Frame, state: np.ndarray, seq: int, telemetry=None) -> Chunk:
    """One inference on ``frame``; validates the output. Raises on any backend problem."""
    spec = backend.spec
    t0 = time.monotonic()
    image = fit_frame(frame.image, spec.image_size)
    t1 = time.monotonic()
    actions = backend.predict_chunk(image, np.asarray(state, dtype=np.float32))
    t2 = time.monotonic()
    actions = np.asarray(actions, dtype=np.float32)
    if actions.ndim != 2 or actions.shape[1] != spec.action_dim or actions.shape[0] < 1:
        raise ValueError(f"backend {backend.name!r} returned shape {actions.shape}, "
                         f"expected ({spec.chunk_size}, {spec.action_dim})")
    if not np.all(np.isfinite(actions)):
        raise ValueError(f"backend {backend.name!r} returned NaN or inf actions")
    if telemetry is not None:
        telemetry.stage("frame_age", t0, t0 - frame.t_capture)
        telemetry.stage("preprocess", t1, t1 - t0)
        telemetry.stage("inference", t2, t2 - t1)
    return Chunk(actions, t_frame=frame.t_capture, fps=float(spec.fps), seq=seq, t_ready=t2)


class InferenceWorker:
    """A thread that runs the backend on each new frame and adds the chunk to the scheduler.

    ``state_fn()`` gives the policy's state input: the last command sent (steering,
    throttle), per the training convention. Errors are kept in ``last_error`` /
    ``consecutive_errors`` for the control loop's safety checks; the worker keeps trying
    (after ``error_backoff_s``).
    """

    def __init__(self, backend, camera: Camera, scheduler: ChunkScheduler, state_fn: Callable[[], np.ndarray],
                 telemetry=None, error_backoff_s: float = 0.05, nice: int = 0) -> None:
        self.backend = backend
        self.camera = camera
        self.scheduler = scheduler
        self.state_fn = state_fn
        self.telemetry = telemetry
        self.error_backoff_s = error_backoff_s
        self.nice = nice  # > 0: this thread yields the CPU to control and serial I/O (Linux: per-thread nice)
        self.last_error: str | None = None
        self.consecutive_errors = 0
        self.errors = 0
        self.chunks = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="inference", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=timeout)
        if self._thread.is_alive():
            log.warning("inference thread still busy after %.1f s; leaving it (daemon)", timeout)
        self._thread = None

    def _run(self) -> None:
        if self.nice > 0 and hasattr(os, "setpriority"):
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
            except OSError as err:
                log.info("inference thread: cannot lower its priority: %s", err)
        last_index = -1
        while not self._stop.is_set():
            frame = self.camera.wait_new(last_index, timeout=0.1)
            if frame is None:
                continue
            last_index = frame.index
            try:
                chunk = run_inference(self.backend, frame, self.state_fn(), self.chunks, self.telemetry)
            except Exception as err:  # noqa: BLE001 - any backend failure is a fault, not a crash
                self.errors += 1
                self.consecutive_errors += 1
                self.last_error = f"{type(err).__name__}: {err}"
                if self.telemetry is not None:
                    self.telemetry.event("event", "inference-error", self.last_error,
                                         consecutive=self.consecutive_errors)
                if self.consecutive_errors == 1:
                    log.error("backend %s failed: %s", getattr(self.backend, "name", "?"), self.last_error)
                self._stop.wait(self.error_backoff_s)
                continue
            self.scheduler.add(chunk)
            self.chunks += 1
            self.consecutive_errors = 0
            self.last_error = None
