"""Where each control tick's action comes from: one interface, two inference sources.

- :class:`AsyncInference` (the default): a thread runs the backend on each new frame and
  files the chunk with the scheduler; a tick reads the action for *now* from the chunks in
  hand, whatever the inference latency.
- :class:`SyncInference` (``--sync``, the guide's loop): each tick waits for a new frame,
  infers and takes the chunk's first action.

Both follow :class:`ActionSource`, so the control loop has one path; another source (a
person's commands from a drive page, say) plugs in the same way.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edgeact.errors import BackendError, DeviceLostError
from edgeact.frames import fit_frame
from edgeact.policy import Backend
from edgeact.runtime.interfaces import Camera, Frame
from edgeact.runtime.recovery import RecoveringBackend
from edgeact.runtime.scheduler import NO_CHUNK, Chunk, ChunkScheduler
from edgeact.runtime.telemetry import Telemetry

log = logging.getLogger("edgeact.runtime")

StateFn = Callable[[], np.ndarray]  # the policy's state input now: the last command sent


@dataclass(frozen=True)
class TickAction:
    """What a source gives for one tick."""

    t: float  # the time the action is for (a sync tick: after its inference)
    action: np.ndarray | None  # (action_dim,) float64 in real units; None: go neutral
    why_none: str = ""  # why there is no action
    stale: str | None = None  # a stale-chunk fault to raise now (None: none)
    age_s: float = float("nan")  # age of the frame behind the action
    step: float = float("nan")  # fractional chunk step read (async)


class ActionSource(Protocol):
    """A per-tick action source with the inference counters the safety checks and report read."""

    @property
    def chunks(self) -> int: ...  # chunks computed

    @property
    def errors(self) -> int: ...  # failed inferences

    @property
    def consecutive_errors(self) -> int: ...

    @property
    def last_error(self) -> str | None: ...  # the newest failure while it lasts; None once one succeeds

    def start(self, t_start: float) -> None: ...

    def stop(self) -> None: ...

    def action(self, now: float) -> TickAction: ...


def run_inference(backend: Backend, frame: Frame, state: np.ndarray, seq: int,
                  telemetry: Telemetry | None = None) -> Chunk:
    """One inference on ``frame``; validates the output. Raises on any backend problem."""
    spec = backend.spec
    t0 = time.monotonic()
    image = fit_frame(frame.image, spec.image_size)
    t1 = time.monotonic()
    actions = backend.predict_chunk(image, np.asarray(state, dtype=np.float32))
    t2 = time.monotonic()
    actions = np.asarray(actions, dtype=np.float32)
    if actions.ndim != 2 or actions.shape[1] != spec.action_dim or actions.shape[0] < 1:
        raise BackendError(f"backend {backend.name!r} returned shape {actions.shape}, "
                           f"expected ({spec.chunk_size}, {spec.action_dim})")
    if not np.all(np.isfinite(actions)):
        raise BackendError(f"backend {backend.name!r} returned NaN or inf actions")
    if telemetry is not None:
        telemetry.stage("frame_age", t0, t0 - frame.t_capture)
        telemetry.stage("preprocess", t1, t1 - t0)
        telemetry.stage("inference", t2, t2 - t1)
    return Chunk(actions, t_frame=frame.t_capture, fps=float(spec.fps), seq=seq, t_ready=t2)


class _Counters:
    """The inference counters both sources keep, updated the same way."""

    def __init__(self, backend: Backend, telemetry: Telemetry | None) -> None:
        self.backend = backend
        self.telemetry = telemetry
        self.chunks = 0
        self.errors = 0
        self.consecutive_errors = 0
        self.last_error: str | None = None

    def _infer(self, frame: Frame, state: np.ndarray) -> Chunk | None:
        """Run the backend; a failure is counted and reported, never raised (it is a fault, not a crash)."""
        try:
            chunk = run_inference(self.backend, frame, state, self.chunks, self.telemetry)
        except Exception as err:  # noqa: BLE001 - any backend failure is a fault, not a crash
            self.errors += 1
            # a device being reopened is bounded by its recovery (RecoveringBackend), not by the error count
            recovering = isinstance(err, DeviceLostError) and isinstance(self.backend, RecoveringBackend)
            self.consecutive_errors += 0 if recovering else 1
            self.last_error = f"{type(err).__name__}: {err}"
            if self.telemetry is not None:
                self.telemetry.event("event", "inference-error", self.last_error,
                                     consecutive=self.consecutive_errors)
            if self.consecutive_errors == 1:
                log.error("backend %s failed: %s", self.backend.name, self.last_error)
            return None
        self.chunks += 1
        self.consecutive_errors = 0
        self.last_error = None
        return chunk


class AsyncInference(_Counters):
    """A thread runs the backend on each new frame; ticks read the scheduler.

    Before the first chunk, the missing chunk is a fault only after ``startup_grace_s``
    (model warm-up). After a failure the thread waits ``error_backoff_s`` and tries again.
    """

    def __init__(self, backend: Backend, camera: Camera, scheduler: ChunkScheduler, state_fn: StateFn,
                 telemetry: Telemetry | None = None, *, startup_grace_s: float, error_backoff_s: float = 0.05,
                 nice: int = 0) -> None:
        super().__init__(backend, telemetry)
        self.camera = camera
        self.scheduler = scheduler
        self.state_fn = state_fn
        self.startup_grace_s = startup_grace_s
        self.error_backoff_s = error_backoff_s
        self.nice = nice  # > 0: this thread yields the CPU to control and serial I/O (Linux: per-thread nice)
        self._t_start = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, t_start: float) -> None:
        self._t_start = t_start
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

    def action(self, now: float) -> TickAction:
        sel = self.scheduler.select(now)
        stale: str | None = None
        if sel.reason == NO_CHUNK:
            waited = now - self._t_start
            stale = f"no chunk {waited:.1f} s after start" if waited > self.startup_grace_s else None
        elif not sel.ok:
            stale = sel.reason
        return TickAction(now, sel.action, sel.reason, stale, sel.age_s, sel.step)

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
            chunk = self._infer(frame, self.state_fn())
            if chunk is None:
                self._stop.wait(self.error_backoff_s)
            else:
                self.scheduler.add(chunk)


class SyncInference(_Counters):
    """Each tick: wait for a new frame (up to ``frame_wait_s``), infer, take the chunk's first action."""

    def __init__(self, backend: Backend, camera: Camera, state_fn: StateFn, telemetry: Telemetry | None = None,
                 *, frame_wait_s: float, should_stop: Callable[[], bool] = lambda: False) -> None:
        super().__init__(backend, telemetry)
        self.camera = camera
        self.state_fn = state_fn
        self.frame_wait_s = frame_wait_s
        self.should_stop = should_stop
        self._last_index = -1

    def start(self, t_start: float) -> None:
        pass

    def stop(self) -> None:
        pass

    def action(self, now: float) -> TickAction:
        frame = self._wait_frame(now + self.frame_wait_s)
        chunk = None
        if frame is not None:
            self._last_index = frame.index
            chunk = self._infer(frame, self.state_fn())
        t_act = time.monotonic()
        age = t_act - frame.t_capture if frame is not None else float("nan")
        if chunk is None:
            return TickAction(t_act, None, "no action", age_s=age)
        return TickAction(t_act, chunk.actions[0].astype(np.float64), age_s=age)

    def _wait_frame(self, give_up: float) -> Frame | None:
        frame = None
        while frame is None and not self.should_stop():  # in slices: a stop is not held up
            left = give_up - time.monotonic()
            if left <= 0:
                break
            frame = self.camera.wait_new(self._last_index, timeout=min(left, 0.02))
        return frame
