"""An accelerator that drops out mid-drive: reopen it in the background, drive on a CPU model meanwhile.

Users report a Hailo-10H that stops answering (``HAILO_COMMUNICATION_CLOSED``) after minutes of
continuous inference (HAILO-FACTS): a rover cannot assume its NPU stays up.
:class:`RecoveringBackend` wraps a backend whose ``predict_chunk`` raises
:class:`~edgeact.errors.DeviceLostError` when that happens and whose ``reopen()`` opens the device
again (:class:`~edgeact.backends.hailo_backend.HailoBackend`):

    ok ──DeviceLostError──▶ lost ──reopen() succeeds──▶ ok
                             │  attempts at backoff_s, 2·backoff_s, … (≤ max_backoff_s) after the loss
                             └──every attempt failed──▶ gave-up

- The inference that hit the loss fails as any backend fault does, so the runtime's next tick is
  neutral (the existing bound: one control period after the failed inference; a device that hangs
  instead is caught by the stale-chunk check, ``max_chunk_age_s`` after its frame).
- While lost, a reopen thread tries ``attempts`` times with doubling waits; without a fallback each
  inference fails at once (the rover stays neutral), with one (``--fallback onnx-int8``) the CPU
  model answers instead and the rover drives on its fresh chunks.
- Once reopened, the device's next chunk is fresh and the drive resumes on it; chunks from before
  the loss are long stale, so nothing old is acted on.
- Gave up: without a fallback the runtime ends the run (``StopKind.DEVICE_LOST``); with one it
  drives on the CPU until stopped. ``stats()`` goes in the run report.

Every transition is reported through ``on_event(kind, message)`` (the runtime's telemetry):
``device-lost``, ``fallback-start``, ``device-reopen``, ``device-reopen-failed``, ``device-reopened``,
``fallback-stop``, ``device-gave-up``. The schedule runs on ``clock``, and :meth:`poll` makes a due
attempt: tests drive it with a fake clock and no thread (``background=False``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from edgeact.errors import ConfigError, DeviceLostError
from edgeact.policy import Backend, Frames, PolicySpec

log = logging.getLogger("edgeact.runtime")

OK, LOST, GAVE_UP = "ok", "lost", "gave-up"
DeviceEventSink = Callable[[str, str], None]  # (kind, message)


@dataclass(frozen=True)
class RecoveryConfig:
    """How hard to try to get a dropped-out device back."""

    attempts: int = 5  # reopen attempts before giving up
    backoff_s: float = 0.5  # wait before the first attempt; doubles after each failure
    max_backoff_s: float = 8.0  # the longest wait between two attempts

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigError(f"reopen attempts must be >= 1, got {self.attempts}")
        if not 0 < self.backoff_s <= self.max_backoff_s:
            raise ConfigError(f"need 0 < backoff_s <= max_backoff_s, got {self.backoff_s}, {self.max_backoff_s}")

    def delays(self) -> list[float]:
        """Seconds before each attempt (the first after the loss, then after each failure)."""
        return [min(self.backoff_s * 2**k, self.max_backoff_s) for k in range(self.attempts)]

    @property
    def give_up_after_s(self) -> float:
        """Time from the loss to the last attempt (each attempt's own duration comes on top)."""
        return sum(self.delays())


class Reopenable(Backend, Protocol):
    def reopen(self) -> None: ...


class RecoveringBackend:
    """A :class:`~edgeact.policy.Backend` over ``primary`` (an accelerator) that reopens it when it
    drops out, with an optional CPU ``fallback`` (see the module docstring)."""

    def __init__(self, primary: Reopenable, fallback: Backend | None = None, config: RecoveryConfig | None = None,
                 *, clock: Callable[[], float] = time.monotonic, background: bool = True) -> None:
        self.primary = primary
        self.fallback = fallback
        self.config = config or RecoveryConfig()
        self.name = primary.name
        self.spec: PolicySpec = primary.spec
        self.on_event: DeviceEventSink | None = None
        self._clock = clock
        self._background = background
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.state = OK
        self.attempt = 0
        self.next_attempt_t = float("inf")
        self.t_lost = float("nan")
        self.last_error: str | None = None
        # for the report
        self.losses = 0
        self.reopened = 0
        self.failed_attempts = 0
        self.fallback_chunks = 0
        self.recovery_s: list[float] = []  # loss -> device back, per recovery

    @property
    def gave_up(self) -> bool:
        return self.state == GAVE_UP

    def predict_chunk(self, image: Frames, state: np.ndarray) -> np.ndarray:
        if self.state == OK:
            try:
                return self.primary.predict_chunk(image, state)
            except DeviceLostError as err:
                self._lost(err)
                raise
        if self.fallback is not None:
            chunk = self.fallback.predict_chunk(image, state)
            self.fallback_chunks += 1
            return chunk
        if self.state == GAVE_UP:
            raise DeviceLostError(f"{self.name}: the device did not come back after {self.config.attempts} reopen "
                                  f"attempts ({self.last_error})")
        raise DeviceLostError(f"{self.name}: device lost ({self.last_error}); reopen attempt "
                              f"{self.attempt + 1}/{self.config.attempts} in "
                              f"{max(0.0, self.next_attempt_t - self._clock()):.1f} s")

    def _lost(self, err: DeviceLostError) -> None:
        with self._lock:
            if self.state != OK:
                return
            now = self._clock()
            self.state, self.attempt, self.t_lost, self.last_error = LOST, 0, now, str(err)
            self.next_attempt_t = now + self.config.delays()[0]
            self.losses += 1
        self._emit("device-lost", f"{self.name}: {err}; reopening in the background (up to "
                                  f"{self.config.attempts} attempts over {self.config.give_up_after_s:.1f} s)")
        if self.fallback is not None:
            self._emit("fallback-start", f"driving on {self.fallback.name} until {self.name} is back")
        if self._background:
            self._start_thread()

    def poll(self, now: float | None = None) -> None:
        """Make the reopen attempt that is due at ``now`` (default: the clock), if any."""
        now = self._clock() if now is None else now
        with self._lock:
            if self.state != LOST or now < self.next_attempt_t:
                return
            self.attempt += 1
            attempt = self.attempt
        self._emit("device-reopen", f"{self.name}: reopen attempt {attempt}/{self.config.attempts}")
        try:
            self.primary.reopen()
        except Exception as err:  # noqa: BLE001 - any failure to reopen counts as one failed attempt
            self._failed(attempt, err)
            return
        with self._lock:
            away = self._clock() - self.t_lost  # the reopen itself (loading the HEF) counts too
            self.state = OK
            self.reopened += 1
            self.recovery_s.append(away)
            self.last_error = None
        self._emit("device-reopened", f"{self.name} is back after {away:.1f} s (attempt {attempt}); "
                                      "driving resumes on its next fresh chunk")
        if self.fallback is not None:
            self._emit("fallback-stop", f"back on {self.name}")

    def _failed(self, attempt: int, err: Exception) -> None:
        with self._lock:
            self.failed_attempts += 1
            self.last_error = f"{type(err).__name__}: {err}"
            if attempt < self.config.attempts:
                self.next_attempt_t = self._clock() + self.config.delays()[attempt]
                kind, message = "device-reopen-failed", (
                    f"{self.name}: attempt {attempt}/{self.config.attempts} failed ({self.last_error}); next in "
                    f"{self.config.delays()[attempt]:.1f} s")
            else:
                self.state, self.next_attempt_t = GAVE_UP, float("inf")
                still = f"; driving on {self.fallback.name} until stopped" if self.fallback is not None else ""
                kind, message = "device-gave-up", (
                    f"{self.name}: not back after {attempt} attempts ({self.last_error}){still}")
        self._emit(kind, message)

    def _start_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._wake.set()
            return
        self._wake.clear()
        self._thread = threading.Thread(target=self._run, name="device-recovery", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._closed and self.state == LOST:
            wait = self.next_attempt_t - self._clock()
            if wait > 0:
                self._wake.wait(min(wait, 0.5))
                self._wake.clear()
                continue
            self.poll()

    def stats(self) -> dict[str, Any]:
        """The run report's ``device`` section."""
        return {"state": self.state, "losses": self.losses, "reopened": self.reopened,
                "failed_attempts": self.failed_attempts, "gave_up": self.gave_up,
                "fallback": self.fallback.name if self.fallback is not None else None,
                "fallback_chunks": self.fallback_chunks, "recovery_s": [round(s, 3) for s in self.recovery_s]}

    def _emit(self, kind: str, message: str) -> None:
        level = logging.ERROR if kind in ("device-lost", "device-gave-up") else logging.WARNING
        log.log(level, "%s: %s", kind, message)
        if self.on_event is not None:
            self.on_event(kind, message)

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self.primary.close()
        if self.fallback is not None:
            self.fallback.close()
