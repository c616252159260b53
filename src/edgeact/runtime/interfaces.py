"""The parts the runtime drives, as typed protocols: what a camera and an actuator must offer.

The runtime only speaks these; any object with these members plugs in (the OpenCV,
picamera2 and replay cameras in :mod:`edgeact.runtime.cameras`, the serial and dry-run
actuators in :mod:`edgeact.runtime.actuators`, and the simulator's camera, which lives with
the simulator: the runtime never imports it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

# (kind, message): what an actuator reports as it happens (serial lost, Arduino FAILSAFE, ...)
ActuatorEventSink = Callable[[str, str], None]


@dataclass(frozen=True)
class Frame:
    """One camera frame as the runtime sees it."""

    image: np.ndarray  # HxWx3 uint8 RGB at the source's own size
    t_capture: float  # time.monotonic() when the frame was captured
    index: int  # 0, 1, 2… per camera
    grab_s: float = 0.0  # time spent grabbing and decoding it


@runtime_checkable
class Camera(Protocol):
    """A frame source that grabs on its own thread and keeps only the newest frame.

    ``start()`` opens the device (its errors surface there, not later); ``finished`` turns
    True when a finite source runs out, ``error`` holds why the grab thread died.
    """

    name: str
    on_frame: Callable[[Frame], None] | None  # called in the grab thread with each new frame
    finished: bool
    error: str | None

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def latest(self) -> Frame | None: ...

    def wait_new(self, after_index: int, timeout: float) -> Frame | None:
        """The newest frame if its index is > ``after_index``, waiting up to ``timeout`` s."""
        ...

    def stats(self) -> dict[str, Any] | None:
        """What the source can say about the run for the report (the simulator: laps), or None."""
        ...


@runtime_checkable
class Actuator(Protocol):
    """Where commands go. ``stop()`` leaves the rover neutral.

    ``send``/``neutral`` return False when nothing was delivered (the port is lost); then
    ``connected`` is False and ``status`` says why.
    """

    port: str
    connected: bool
    status: str
    last_sent: tuple[float, float]
    on_event: ActuatorEventSink | None

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def send(self, steering: float, throttle: float) -> bool: ...

    def neutral(self) -> bool: ...

    def outputs(self) -> tuple[float, float]:
        """What the motors get now: the board's outputs where visible (a simulated Arduino),
        else the last command delivered."""
        ...

    def stats(self, recent: int | None = None) -> dict[str, Any]:
        """Counters for the report: sent, acked, neutral_sent, send failures, ...; the ack latency over
        the last ``recent`` acks (a live view that costs the same at any length of run), else all kept."""
        ...

    def board_stats(self) -> dict[str, Any] | None:
        """The board's own view (a simulated Arduino: inter-arrival, FAILSAFE), or None."""
        ...
