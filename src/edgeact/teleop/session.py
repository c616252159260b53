"""One drive: the runtime with a pilot, the recorder, the drive page and the gamepad, wired.

::

    session = DriveSession(backend, camera, actuator, DriveConfig(record_dir="episodes"))
    session.start()          # runtime (control thread), recorder, web server, gamepad
    print(session.url)       # http://127.0.0.1:8887/?token=… (https:// beyond this machine)
    session.wait()           # until Ctrl-C / SIGTERM / a fatal fault
    report = session.stop()  # neutral first; then every part

Every input (page, gamepad) arrives as a :mod:`~edgeact.teleop.messages` message through
:meth:`DriveSession.apply`; every page reads :meth:`DriveSession.status`. The state (mode,
recording, emergency stop) lives here, on the rover: a reload or a second page shows the
truth.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeact.errors import ConfigError
from edgeact.policy import Backend
from edgeact.runtime.config import ProcessConfig, RuntimeConfig
from edgeact.runtime.interfaces import Actuator, Camera
from edgeact.runtime.loop import Runtime, action_indices
from edgeact.runtime.telemetry import RunReport
from edgeact.teleop.messages import (
    Button,
    Control,
    FrameReceived,
    LatencyReport,
    Message,
    SetMaxThrottle,
    SetMode,
    StepMaxThrottle,
)
from edgeact.teleop.pilot import MODES, Executed, PersonInput, Pilot, PilotConfig
from edgeact.teleop.recorder import Cadence, Recorder
from edgeact.teleop.source import PilotSource

if TYPE_CHECKING:
    from edgeact.teleop.gamepad import Gamepad
    from edgeact.teleop.web.certificate import Certificate
    from edgeact.teleop.web.server import DriveServer

log = logging.getLogger("edgeact.drive")


ON_RECORD_ERROR = ("neutral", "keep-driving")
# The page's live figures cover the newest ticks, inferences and acks: 2 s at 100 Hz, and a cost that
# does not grow with the length of the session.
LIVE_WINDOW = 200


@dataclass
class DriveConfig:
    runtime: RuntimeConfig = field(default_factory=lambda: RuntimeConfig(process=ProcessConfig(keyboard=False)))
    pilot: PilotConfig = field(default_factory=PilotConfig)
    record_dir: str | None = None  # None: recording off
    record_fps: float | None = None  # None: the policy's fps (30 without a model)
    record_meta: dict[str, Any] = field(default_factory=dict)  # into each episode's meta.json: the policy
    auto_record: bool = False  # record while the throttle is non-zero
    # When a recording write fails (disk full, a read-only or failing card): "neutral" holds the rover
    # neutral, the policy's auto mode included, until a person acts; "keep-driving" changes nothing but
    # the page's message. Neutral by default: a person recording by hand wants to know at once.
    on_record_error: str = "neutral"
    host: str = "127.0.0.1"  # the page is only reachable from this machine unless --web says otherwise
    port: int = 8887
    https: bool | None = None  # None: HTTPS exactly when the page is reachable from other machines
    cert_dir: str | None = None  # None: ~/.config/edgeact/tls (certificate.default_dir)
    token: str | None = None  # None: a fresh random one
    video_fps: float = 15.0  # the page's video rate cap
    video_quality: int = 70  # JPEG quality of the page's video
    gamepad: str | None = None  # evdev device path on the Pi

    def __post_init__(self) -> None:
        if self.on_record_error not in ON_RECORD_ERROR:
            raise ConfigError(f"on a recording error the rover can do {' or '.join(ON_RECORD_ERROR)}, "
                              f"not {self.on_record_error!r}")


@dataclass
class DriveReport:
    run: RunReport
    cadence: list[Cadence]
    interventions: int
    video_latency_ms: dict[str, float]  # n, p50, p99 as the page measured them
    record_error: str | None = None  # why recording last stopped on its own, if it did


class DriveSession:
    """Owns the parts of one drive; thread-safe ``apply`` and ``status`` for the inputs and pages."""

    def __init__(self, backend: Backend, camera: Camera, actuator: Actuator, config: DriveConfig | None = None,
                 has_policy: bool = True) -> None:
        self.config = config or DriveConfig()
        cfg = self.config
        self.backend = backend
        self.camera = camera
        self.actuator = actuator
        self.max_throttle = cfg.runtime.limits.max_throttle  # the cap of the page's slider
        pilot_cfg = PilotConfig(cfg.pilot.heartbeat_s, min(cfg.pilot.max_throttle, self.max_throttle),
                                cfg.pilot.deadzone, has_policy)
        self.pilot = Pilot(pilot_cfg, on_event=self._event)
        self.runtime = Runtime(backend, camera, actuator, cfg.runtime)
        self._steer_i, self._throttle_i = action_indices(backend.spec)
        # The pilot wraps the runtime's own inference source: inference, its counters and its
        # faults stay the runtime's; the pilot only picks each tick's command.
        self._policy_source = self.runtime.source
        self.runtime.source = PilotSource(self._policy_source, self.pilot, self._steer_i, self._throttle_i,
                                          backend.spec.action_dim)
        self.recorder: Recorder | None = None
        if cfg.record_dir is not None:
            self.recorder = Recorder(cfg.record_dir, cfg.record_fps or backend.spec.fps, camera, self.executed,
                                     on_event=self._event, auto_record=cfg.auto_record, meta=cfg.record_meta,
                                     on_error=self._record_failed)
        self.token = cfg.token or secrets.token_urlsafe(16)
        self.server: DriveServer | None = None
        self.certificate: Certificate | None = None
        self.gamepad: Gamepad | None = None
        self.latency_ms: deque[float] = deque(maxlen=100_000)
        self.latency_count = 0  # every latency the pages reported, the ones the deque dropped included
        self._stopped = False

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the runtime (control loop in a background thread), then the recorder, page and gamepad."""
        try:
            from edgeact.teleop.web.server import DriveServer
        except ImportError as err:
            raise ConfigError(f"edgeact drive needs aiohttp ({err}): pip install 'edgeact[drive]'") from err
        self.certificate = self._certificate()
        self.runtime.start()
        try:
            if self.recorder is not None:
                self.recorder.start()
            self.server = DriveServer(self, self.config.host, self.config.port, self.token,
                                      video_fps=self.config.video_fps, video_quality=self.config.video_quality,
                                      certificate=self.certificate)
            self.server.start()
            if self.config.gamepad:
                from edgeact.teleop.gamepad import Gamepad

                self.gamepad = Gamepad(self.config.gamepad, self.apply, self.pilot.lost)
                self.gamepad.start()
        except BaseException:
            self.stop("start failed")
            raise

    def _certificate(self) -> Certificate | None:
        """The page's certificate when it is served over HTTPS (made or reused), else None."""
        host = self.config.host
        https = self.config.https if self.config.https is not None else not is_loopback(host)
        if not https:
            if not is_loopback(host):
                log.warning("the drive page on %s is plain HTTP: its token crosses the network in clear text "
                            "(drop --no-https to serve it over HTTPS)", host)
            return None
        from edgeact.teleop.web.certificate import ensure_certificate, local_names

        return ensure_certificate(self.config.cert_dir, local_names(host))

    @property
    def url(self) -> str:
        return self.server.url if self.server is not None else ""

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the control loop to end (Ctrl-C, SIGTERM, a fatal fault). True if it ended."""
        return self.runtime.wait(timeout)

    def stop(self, reason: str = "stopped") -> DriveReport:
        """Neutral first (the runtime), then the gamepad, the page and the recorder (which keeps the episode
        in progress)."""
        run = self.runtime.stop(reason)
        if not self._stopped:
            self._stopped = True
            for part in (self.gamepad, self.server, self.recorder):
                if part is not None:
                    try:
                        part.stop()
                    except Exception:
                        log.exception("stopping %s", part)
        lat = np.asarray(self.latency_ms, dtype=np.float64)
        latency: dict[str, float] = {"n": float(lat.size)}
        if lat.size:
            latency.update(p50=float(np.percentile(lat, 50)), p99=float(np.percentile(lat, 99)))
        rec = self.recorder
        return DriveReport(run, list(rec.cadence) if rec else [], self.pilot.interventions, latency,
                           rec.error if rec else None)

    # ---- inputs -------------------------------------------------------------------------

    def apply(self, source: str, msg: Message) -> str | None:
        """Act on one input message from ``source``; an error text for the page, or None."""
        pilot = self.pilot
        heartbeat = source != "gamepad"
        if isinstance(msg, Control):
            pilot.person_input(PersonInput(source, msg.steering, msg.throttle, msg.active, heartbeat))
            return None
        if isinstance(msg, FrameReceived):  # the server's flow control; never a person's act
            return None
        if isinstance(msg, LatencyReport):
            self.latency_ms.extend(msg.ms)
            self.latency_count += len(msg.ms)
            pilot.heard(source)
            return None
        pilot.acted(source, heartbeat)  # a button: a person acted here
        try:
            if isinstance(msg, SetMode):
                pilot.set_mode(msg.mode)
            elif isinstance(msg, SetMaxThrottle):
                pilot.set_max_throttle(min(msg.value, self.max_throttle))
            elif isinstance(msg, StepMaxThrottle):
                value = pilot.max_throttle + msg.delta
                pilot.set_max_throttle(max(0.0, min(self.max_throttle, round(value, 3))))
            elif isinstance(msg, Button):
                return self._button(source, msg.name)
        except ValueError as err:
            log.warning("%s: %s", source, err)
            return str(err)
        return None

    def _button(self, source: str, name: str) -> str | None:
        estop = self.runtime.estop
        if name == "estop_toggle":
            name = "release" if estop.triggered else "estop"
        if name == "estop":
            self.runtime.emergency_stop(f"STOP on {source}")
            return None
        if name == "release":
            if estop.triggered:
                log.warning("emergency stop released on %s", source)
                estop.release()
            return None
        rec = self.recorder
        if rec is None:
            return "recording is off: start edgeact drive with --record DIR"
        if name == "record":
            rec.toggle()
        elif name == "rerecord":
            rec.rerecord()
        elif name == "erase_last" and rec.erase_last() is None:
            return "no episode of this session to erase"
        return None

    def _record_failed(self, message: str) -> None:
        """The recorder's thread: a write failed and the episode was discarded."""
        if self.config.on_record_error == "neutral":
            self.pilot.hold(message)

    def lost(self, source: str, reason: str) -> None:
        """An input went away (page closed, gamepad unplugged): neutral if it was driving."""
        self.pilot.lost(source, reason)

    # ---- what every page shows ----------------------------------------------------------------

    def executed(self) -> Executed:
        """What the rover executes now: the command last delivered, and whether it was a person's takeover."""
        steering, throttle = self.actuator.last_sent
        neutral = steering == 0.0 and throttle == 0.0
        why = "; ".join(self.runtime.safety.reasons()) or self.pilot.held if neutral else ""
        return Executed(time.monotonic(), steering, throttle, neutral, why, self.pilot.intervening and not neutral)

    def status(self) -> dict[str, Any]:
        """The rover's state and live telemetry, as plain JSON-able values."""
        pilot, rt = self.pilot, self.runtime
        ex = self.executed()
        rec = self.recorder
        recent = rt.telemetry.window(LIVE_WINDOW)
        period = recent["period"][np.isfinite(recent["period"])]
        inference = recent["inference"][-50:]
        age = recent["chunk_age"][np.isfinite(recent["chunk_age"])]
        act = self.actuator.stats(recent=LIVE_WINDOW)
        sent, acked = act.get("sent", 0), act.get("acked", 0)
        return {
            "mode": pilot.mode.value,
            "modes": list(MODES) if pilot.config.has_policy else ["user"],
            "controller": pilot.controller,
            "held": pilot.held,
            "estop": rt.estop.triggered,
            "max_throttle": pilot.max_throttle,
            "recording": bool(rec and rec.recording),
            "record_available": rec is not None,
            "episodes": rec.episodes if rec else 0,
            "record_error": rec.error if rec else None,
            "steps": rec.steps if rec else 0,
            "sent": [round(ex.steering, 3), round(ex.throttle, 3)],
            "neutral": ex.neutral,
            "why": ex.why,
            "intervention": ex.intervention,
            "interventions": pilot.interventions,
            "chunk": self._chunk_ahead(),
            "telemetry": {
                "rate_hz": _round(1.0 / period.mean()) if period.size else None,
                "missed": int(rt.ratekeeper.missed),
                "jitter_p99_ms": _round(np.percentile(np.abs(period - 1.0 / rt.config.rate_hz), 99) * 1e3)
                if period.size else None,
                "inference_p50_ms": _round(np.percentile(inference, 50) * 1e3) if inference.size else None,
                "inference_p99_ms": _round(np.percentile(inference, 99) * 1e3) if inference.size else None,
                "chunk_age_ms": _round(age[-1] * 1e3) if age.size else None,
                "faults": rt.safety.reasons(),
                "serial": {"connected": bool(getattr(self.actuator, "connected", True)), "sent": sent,
                           "acked": acked, "ack_p50_ms": _round(act.get("ack_latency_ms", {}).get("p50"))},
            },
        }

    def _chunk_ahead(self, horizon_s: float = 1.0, points: int = 20) -> list[list[float]] | None:
        """The policy's plan for the next ``horizon_s`` from its newest chunk, as [steering, throttle] pairs."""
        if not self.pilot.config.has_policy:
            return None
        scheduler = getattr(self._policy_source, "scheduler", None)  # the async inference's chunks
        chunk = scheduler.newest if scheduler is not None else None
        if chunk is None:
            return None
        now = time.monotonic()
        plan = []
        for k in range(points):
            a = chunk.action_at(now + horizon_s * k / (points - 1))
            if a is None:
                break
            plan.append([round(float(a[self._steer_i]), 3), round(float(a[self._throttle_i]), 3)])
        return plan or None

    def _event(self, kind: str, message: str) -> None:
        self.runtime.telemetry.event("event", kind, message)


def _round(v: Any, nd: int = 2) -> float | None:
    return None if v is None or not math.isfinite(float(v)) else round(float(v), nd)


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach ``host`` (a name counts when every address it has is loopback)."""
    import ipaddress
    import socket

    if host in ("", "0.0.0.0", "::"):
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def check_record_dir(path: str | None) -> None:
    if path is not None and Path(path).exists() and not Path(path).is_dir():
        raise ConfigError(f"--record {path} is a file; give a folder for the episodes")

