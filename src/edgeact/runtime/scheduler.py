"""Action chunks in hand → the action for *now*.

A chunk is the policy's prediction of the next ``chunk_size`` actions at the policy's fps,
starting at the capture time of the frame it was computed from. The action for time ``t``
is read at the fractional step ``(t - t_frame) * fps``, linearly interpolated between the
two neighbouring steps, so the control rate (50–100 Hz) is independent of both the policy's
fps (30) and the inference latency.

Optional temporal ensembling (ACT paper; LeRobot's ``ACTTemporalEnsembler``): every chunk
that covers ``t`` gives an action; they are averaged with weights ``exp(-coeff * i)``,
``i = 0`` for the oldest chunk. ``coeff = 0.01`` (LeRobot's default) weights them almost
equally; a larger coefficient favours older predictions, a negative one newer ones.

A chunk is stale (no action, the caller goes neutral) when ``t`` is past its last step
(its horizon) or when it is older than ``max_age_s``.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np

from edgeact.errors import BackendError


@dataclass(frozen=True)
class Chunk:
    """One prediction: ``actions[i]`` is the action for ``t_frame + i / fps``."""

    actions: np.ndarray  # (chunk_size, action_dim) float32, real units
    t_frame: float  # capture time of the frame the chunk was computed from (time.monotonic)
    fps: float  # policy steps per second
    seq: int = 0  # running number of the chunk
    t_ready: float = float("nan")  # when inference finished

    @property
    def horizon_s(self) -> float:
        """Time after ``t_frame`` of the last step."""
        return (len(self.actions) - 1) / self.fps

    def step_at(self, t: float) -> float:
        """Fractional step index for time ``t`` (negative before the frame time)."""
        return (t - self.t_frame) * self.fps

    def covers(self, t: float) -> bool:
        return self.step_at(t) <= len(self.actions) - 1 + 1e-9

    def action_at(self, t: float) -> np.ndarray | None:
        """Linearly interpolated action at time ``t``; None past the horizon.

        Times before the frame time (clock skew) read step 0.
        """
        u = self.step_at(t)
        last = len(self.actions) - 1
        if u > last + 1e-9:
            return None
        if u <= 0.0:
            return self.actions[0].astype(np.float64)
        i = min(int(math.floor(u)), last)
        frac = u - i
        if i >= last or frac <= 0.0:
            return self.actions[i].astype(np.float64)
        a0 = self.actions[i].astype(np.float64)
        a1 = self.actions[i + 1].astype(np.float64)
        return a0 + (a1 - a0) * frac


@dataclass(frozen=True)
class Selection:
    """What the scheduler gives for one control tick."""

    action: np.ndarray | None  # (action_dim,) float64, or None: go neutral
    reason: str = ""  # why there is no action ("" when there is one)
    age_s: float = float("nan")  # age of the newest chunk at t (t - t_frame)
    step: float = float("nan")  # fractional step read in the newest chunk
    chunk_seq: int = -1
    n_chunks: int = 0  # chunks that contributed (1 without ensembling)

    @property
    def ok(self) -> bool:
        return self.action is not None


NO_CHUNK = "no chunk yet"


@dataclass
class ChunkScheduler:
    """Thread-safe store of recent chunks; ``select(t)`` gives the action for time ``t``.

    ``max_age_s``: a chunk whose frame is older than this is stale even within its horizon
    (None: the horizon alone). ``ensemble_coeff``: None for no ensembling.
    """

    max_age_s: float | None = None  # the runtime passes SafetyConfig.max_chunk_age_s
    ensemble_coeff: float | None = None
    _chunks: list[Chunk] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, chunk: Chunk) -> None:
        actions = np.asarray(chunk.actions)
        if actions.ndim != 2 or len(actions) == 0:
            raise BackendError(f"chunk actions must be (chunk_size, action_dim), got shape {actions.shape}")
        if not chunk.fps > 0:
            raise BackendError(f"chunk fps must be positive, got {chunk.fps}")
        with self._lock:
            self._chunks.append(chunk)
            self._chunks.sort(key=lambda c: c.t_frame)  # oldest first; arrivals are nearly always in order
            # Keep what can still cover a future time, and at least the newest chunk.
            newest_t = self._chunks[-1].t_frame
            self._chunks = [c for c in self._chunks[:-1] if c.t_frame + c.horizon_s >= newest_t] + [self._chunks[-1]]

    def clear(self) -> None:
        with self._lock:
            self._chunks.clear()

    @property
    def newest(self) -> Chunk | None:
        with self._lock:
            return self._chunks[-1] if self._chunks else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._chunks)

    def select(self, t: float) -> Selection:
        with self._lock:
            chunks = list(self._chunks)
        if not chunks:
            return Selection(None, NO_CHUNK)
        newest = chunks[-1]
        age = t - newest.t_frame
        step = newest.step_at(t)
        if self.max_age_s is not None and age > self.max_age_s:
            return Selection(None, f"stale chunk: {age * 1e3:.0f} ms old (max age {self.max_age_s * 1e3:.0f} ms)",
                             age, step, newest.seq)
        if not newest.covers(t):
            return Selection(None, f"stale chunk: {age * 1e3:.0f} ms old, past its horizon "
                             f"({newest.horizon_s * 1e3:.0f} ms)", age, step, newest.seq)
        if self.ensemble_coeff is None:
            return Selection(newest.action_at(t), "", age, step, newest.seq, 1)
        # Temporal ensembling over every chunk covering t, oldest first: w_i = exp(-coeff * i).
        acts = []
        for c in chunks:
            a = c.action_at(t)
            if a is not None:
                acts.append(a)
        w = np.exp(-float(self.ensemble_coeff) * np.arange(len(acts), dtype=np.float64))
        action = (w[:, None] * np.stack(acts)).sum(axis=0) / w.sum()
        return Selection(action, "", age, step, newest.seq, len(acts))
