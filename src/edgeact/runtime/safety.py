"""Safety: which faults force neutral, the emergency stop, and signals.

The control loop asks, every tick, for the conditions that must hold to drive (a fresh
chunk, a live camera, a working backend, a connected serial port, no emergency stop). Any
that fails makes the tick send neutral, and :class:`SafetyMonitor` logs one clear line when
a fault starts and one when it clears (a fault also goes to telemetry with its reason).

Transient faults (stale chunk, camera stall, serial lost, a backend error) clear when the
condition holds again: the limiter was reset to neutral, so driving resumes through the
slew limit. Latched faults (emergency stop) hold neutral until the process restarts, or
until released on purpose (:meth:`EmergencyStop.release`: the drive page's STOP, pressed again).
Fatal ones (too many backend errors in a row, camera gone, SIGINT/SIGTERM) end the run,
and the run always ends by sending neutral. The Arduino's watchdog (250 ms) is the last
line of defence when the Pi cannot reach it at all.

Emergency stop: SIGUSR1 (``kill -USR1 <pid>``) or, in an interactive terminal, the space
bar or ``e``. ``q`` stops the run. Ctrl-C (SIGINT) and SIGTERM stop the run.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, TextIO

from edgeact.errors import ConfigError

log = logging.getLogger("edgeact.runtime")

# Fault kinds (the telemetry "kind" field).
STALE_CHUNK = "stale-chunk"
CAMERA_STALL = "camera-stall"
CAMERA_ERROR = "camera-error"
BACKEND_ERROR = "backend-error"
SERIAL_LOST = "serial-lost"
ESTOP = "emergency-stop"

EventSink = Callable[..., None]  # (event, kind=, message=, t=, **extra)


@dataclass(frozen=True)
class SafetyConfig:
    """When a tick must go neutral, and when the run must end."""

    max_chunk_age_s: float = 0.5  # newest chunk older than this (from its frame's capture) → neutral
    camera_stall_s: float = 0.5  # no new frame for this long → neutral
    startup_grace_s: float = 10.0  # time allowed for the first frame and the first chunk (model warm-up)
    max_backend_errors: int = 3  # this many failed inferences in a row end the run

    def __post_init__(self) -> None:
        for name in ("max_chunk_age_s", "camera_stall_s", "startup_grace_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_backend_errors < 1:
            raise ConfigError(f"max_backend_errors must be >= 1, got {self.max_backend_errors}")


@dataclass
class FaultRecord:
    kind: str
    message: str
    t_start: float
    t_end: float | None = None  # None while active (or latched)


@dataclass
class SafetyMonitor:
    """Keeps the set of active faults; logs and reports transitions."""

    on_event: EventSink | None = None  # on_event(kind, message, t=..., level=...)
    latched: dict[str, FaultRecord] = field(default_factory=dict)
    active: dict[str, FaultRecord] = field(default_factory=dict)
    history: list[FaultRecord] = field(default_factory=list)

    def update(self, t: float, conditions: dict[str, str | None]) -> bool:
        """``conditions``: kind → message when that fault holds now, None when it does not.

        Returns True when the tick must be neutral (any fault active or latched).
        """
        for kind, message in conditions.items():
            rec = self.active.get(kind)
            if message:
                if rec is None:
                    rec = FaultRecord(kind, message, t)
                    self.active[kind] = rec
                    self.history.append(rec)
                    log.warning("FAULT %s: %s -> neutral", kind, message)
                    self._emit("fault", kind, message, t)
            elif rec is not None:
                rec.t_end = t
                del self.active[kind]
                msg = f"{kind} cleared after {(t - rec.t_start) * 1e3:.0f} ms"
                log.warning("CLEARED %s", msg)
                self._emit("cleared", kind, msg, t)
        return bool(self.active or self.latched)

    def latch(self, kind: str, message: str, t: float) -> None:
        """A fault that holds neutral until restart (emergency stop)."""
        if kind in self.latched:
            return
        rec = FaultRecord(kind, message, t)
        self.latched[kind] = rec
        self.history.append(rec)
        log.error("FAULT %s: %s -> neutral (latched until restart)", kind, message)
        self._emit("fault", kind, message, t, latched=True)

    def unlatch(self, kind: str, t: float) -> None:
        """Clear a latched fault that was released on purpose."""
        rec = self.latched.pop(kind, None)
        if rec is None:
            return
        rec.t_end = t
        msg = f"{kind} released after {(t - rec.t_start):.1f} s"
        log.warning("RELEASED %s", msg)
        self._emit("cleared", kind, msg, t)

    def reasons(self) -> list[str]:
        return [f"{r.kind}: {r.message}" for r in list(self.latched.values()) + list(self.active.values())]

    def _emit(self, event: str, kind: str, message: str, t: float, **extra: Any) -> None:
        if self.on_event is not None:
            self.on_event(event, kind=kind, message=message, t=t, **extra)


class EmergencyStop:
    """A latch: once triggered, stays triggered. Safe to trigger from any thread or a signal handler."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None

    def trigger(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    def release(self) -> None:
        """Clear the latch: only on a person's deliberate request (a second press of STOP)."""
        self.reason = None
        self._event.clear()

    @property
    def triggered(self) -> bool:
        return self._event.is_set()


class SignalGuard:
    """SIGINT/SIGTERM → ``on_stop(name)``, SIGUSR1 → ``on_estop(name)``, while installed.
    A second SIGINT/SIGTERM raises KeyboardInterrupt (the clean stop is stuck somewhere).

    Handlers only set flags (the control loop acts on them within a period). Python only
    lets the main thread install handlers; elsewhere ``install()`` returns False and does
    nothing. ``restore()`` puts the previous handlers back.
    """

    def __init__(self, on_stop: Callable[[str], None], on_estop: Callable[[str], None]) -> None:
        self.on_stop = on_stop
        self.on_estop = on_estop
        self._saved: dict[int, Any] = {}
        self._stops = 0

    def install(self) -> bool:
        if threading.current_thread() is not threading.main_thread() or self._saved:
            return False
        plan = {signal.SIGINT: self._stop_handler, signal.SIGTERM: self._stop_handler}
        if hasattr(signal, "SIGUSR1"):
            plan[signal.SIGUSR1] = self._estop_handler
        for sig, handler in plan.items():
            self._saved[sig] = signal.getsignal(sig)
            signal.signal(sig, handler)
        return True

    def restore(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, old in self._saved.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
        self._saved.clear()

    def _stop_handler(self, signum: int, frame: FrameType | None) -> None:
        self._stops += 1
        if self._stops > 1:  # a second Ctrl-C: the clean stop is stuck; neutral was sent first thing
            raise KeyboardInterrupt
        self.on_stop(signal.Signals(signum).name)

    def _estop_handler(self, signum: int, frame: FrameType | None) -> None:
        self.on_estop(signal.Signals(signum).name)


class KeyboardEStop:
    """In an interactive terminal: space or ``e`` → emergency stop, ``q`` → stop the run.

    Puts the terminal in cbreak mode (keys arrive without Enter; Ctrl-C still signals) and
    restores it on ``stop()``. Does nothing when stdin is not a terminal.
    """

    def __init__(self, on_estop: Callable[[str], None], on_quit: Callable[[str], None],
                 stream: TextIO | None = None) -> None:
        self.on_estop = on_estop
        self.on_quit = on_quit
        self.stream = stream if stream is not None else sys.stdin
        self._saved: list[Any] | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.active = False

    def start(self) -> bool:
        try:
            fd = self.stream.fileno()
        except (AttributeError, OSError, ValueError):
            return False
        if not os.isatty(fd):
            return False
        import termios
        import tty

        self._saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(fd,), name="estop-keys", daemon=True)
        self._thread.start()
        self.active = True
        return True

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=1.0)
        self._thread = None
        if self._saved is not None:
            import termios

            termios.tcsetattr(self.stream.fileno(), termios.TCSADRAIN, self._saved)
            self._saved = None
        self.active = False

    def _run(self, fd: int) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                continue
            try:
                key = os.read(fd, 1)
            except OSError:
                return
            if key in (b" ", b"e", b"E"):
                self.on_estop("key")
            elif key in (b"q", b"Q"):
                self.on_quit("key q")
