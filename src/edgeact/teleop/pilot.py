"""Who drives this tick: a person, the policy, or both (the runtime's command source).

Modes, as Donkeycar users know them:

- ``user``: the command comes from the person in control (page or gamepad);
- ``auto-steer``: the policy steers, the person sets the throttle;
- ``auto``: the policy drives; any input from a person takes over at once (an
  *intervention*) and hands back when released.

Control belongs to the input where a person last started to act (pressed a key, touched
the joystick, pressed a button); other pages only watch. A page must send a message at least every ``heartbeat_s``: when
the page in control goes silent (closed tab, sleeping phone, lost Wi-Fi) the rover goes
neutral and stays so until a person acts again, in ``user`` and ``auto-steer`` modes and
during an intervention. In ``auto`` without an intervention the policy needs nobody.
It starts in ``user`` mode with nobody in control: nothing moves until a person acts.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from edgeact.errors import ConfigError

log = logging.getLogger("edgeact.drive")


class Mode(str, Enum):
    USER = "user"
    AUTO_STEER = "auto-steer"
    AUTO = "auto"


MODES = tuple(m.value for m in Mode)


@dataclass(frozen=True)
class Decision:
    """What the pilot wants for one tick.

    ``command``: (steering, throttle) to send, or None to hold neutral (``hold`` says why).
    ``uses_policy``: the command follows the policy, so a stale or missing chunk is a fault as
    in ``edgeact run``; False when a person drives and the policy's chunk does not matter.
    """

    command: tuple[float, float] | None
    uses_policy: bool
    hold: str = ""
    intervention: bool = False


@dataclass(frozen=True)
class PilotConfig:
    heartbeat_s: float = 0.25  # the page in control must speak this often, or neutral
    max_throttle: float = 0.5  # the max-throttle slider's start value (|throttle| scale for a person)
    deadzone: float = 0.05  # stick values below this are "not touched"
    has_policy: bool = True  # False: no model loaded, only user mode

    def __post_init__(self) -> None:
        if not self.heartbeat_s > 0:
            raise ConfigError(f"heartbeat must be positive, got {self.heartbeat_s} s")
        if not 0.0 <= self.max_throttle <= 1.0:
            raise ConfigError(f"max throttle must be in [0, 1], got {self.max_throttle}")


@dataclass(frozen=True)
class PersonInput:
    """One control message from an input (a page's stick and keys, the gamepad)."""

    source: str  # "page 3", "gamepad"
    steering: float  # [-1, 1]
    throttle: float  # [-1, 1], before the max-throttle scale
    active: bool  # a person is touching, holding or pressing something now
    heartbeat: bool = True  # this source must keep speaking (pages); a gamepad reports loss instead


@dataclass(frozen=True)
class Executed:
    """What the last control tick sent, and who decided it (for the recorder and the page)."""

    t: float = float("nan")
    steering: float = 0.0
    throttle: float = 0.0
    neutral: bool = True
    why: str = "not started"
    intervention: bool = False


def _clip(v: float) -> float:
    return 0.0 if not math.isfinite(v) else max(-1.0, min(1.0, float(v)))


class Pilot:
    """Thread-safe: inputs arrive from the web and gamepad threads, decisions are read by the control loop."""

    def __init__(self, config: PilotConfig | None = None, clock: Callable[[], float] = time.monotonic,
                 on_event: Callable[[str, str], None] | None = None) -> None:
        self.config = config or PilotConfig()
        self._clock = clock
        self._on_event = on_event
        self._lock = threading.Lock()
        self._mode = Mode.USER
        self._max_throttle = self.config.max_throttle
        self._controller: str | None = None
        self._last_heard: dict[str, float] = {}
        self._active: dict[str, bool] = {}  # per source: was a person acting in its last message
        self._input = PersonInput("", 0.0, 0.0, False)
        self._held = "waiting for a person to drive"
        self._intervening = False  # control thread only
        self._hold_auto = False  # auto mode holds neutral too, until a person acts
        self.interventions = 0

    # ---- inputs (any thread) ---------------------------------------------------------------

    def person_input(self, inp: PersonInput) -> None:
        """A control message. A person starting to act (idle → active) takes control; any message from the
        controller keeps it. Holding on is not starting: two held inputs do not fight, and a page that comes
        back from silence with a key still down does not drive until it is released and pressed again."""
        now = self._clock()
        with self._lock:
            self._last_heard[inp.source] = now
            starting = inp.active and not self._active.get(inp.source, False)
            self._active[inp.source] = inp.active
            if starting:
                self._take_control(inp.source)
            if inp.source == self._controller:
                self._input = PersonInput(inp.source, _clip(inp.steering), _clip(inp.throttle), inp.active,
                                          inp.heartbeat)

    def acted(self, source: str, heartbeat: bool = True) -> None:
        """A person pressed a button (mode, record, stop…) on ``source``: it takes control."""
        with self._lock:
            self._last_heard[source] = self._clock()
            self._take_control(source)
            if self._input.source != source:
                self._input = PersonInput(source, 0.0, 0.0, False, heartbeat)

    def heard(self, source: str) -> None:
        """Any message at all from ``source`` (keeps its heartbeat alive)."""
        with self._lock:
            self._last_heard[source] = self._clock()

    def lost(self, source: str, reason: str) -> None:
        """``source`` is gone (socket closed, gamepad unplugged): neutral if it was in control."""
        with self._lock:
            self._last_heard.pop(source, None)
            self._active.pop(source, None)
            if source == self._controller:
                self._release(f"{reason}: neutral until a person acts")

    def hold(self, reason: str) -> None:
        """Neutral in every mode, the policy's ``auto`` included, until a person acts again
        (a recording that failed, when the drive is told to stop then)."""
        with self._lock:
            self._release(f"{reason}: neutral until a person acts")
            self._hold_auto = True

    def set_mode(self, mode: str) -> None:
        """``user``, ``auto-steer``, ``auto`` or ``next``; ValueError for anything else."""
        with self._lock:
            if mode == "next":
                new = Mode(MODES[(MODES.index(self._mode.value) + 1) % len(MODES)])
                if not self.config.has_policy:
                    new = Mode.USER
            else:
                try:
                    new = Mode(mode)
                except ValueError:
                    raise ValueError(f"unknown mode {mode!r}; the modes are {', '.join(MODES)}") from None
                if new is not Mode.USER and not self.config.has_policy:
                    raise ValueError(f"mode {mode!r} needs a policy: start edgeact drive with --model")
            changed = new is not self._mode
            self._mode = new
        if changed:
            self._event("mode", f"mode {new.value}")

    def set_max_throttle(self, value: float) -> None:
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            raise ValueError(f"max throttle must be in [0, 1], got {value}")
        with self._lock:
            self._max_throttle = float(value)

    # ---- each control tick (the control thread, through PilotSource) -------------------------

    def decide(self, now: float, policy: tuple[float, float] | None) -> Decision:
        """The command for the tick at ``now``; ``policy``: the policy's action for now, None when stale."""
        with self._lock:
            self._check_heartbeat(now)
            mode, inp, held, max_th = self._mode, self._input, self._held, self._max_throttle
            person = self._controller is not None
        dz = self.config.deadzone
        user = (inp.steering, inp.throttle * max_th) if person else None
        touching = person and inp.active and (abs(inp.steering) > dz or abs(inp.throttle) > dz)
        if mode is Mode.USER:
            return self._decided(Decision(user, uses_policy=False, hold=held), False)
        if mode is Mode.AUTO_STEER:
            if user is None or policy is None:
                return self._decided(Decision(None, uses_policy=user is not None, hold=held), False)
            steer_by_hand = touching and abs(inp.steering) > dz
            steering = inp.steering if steer_by_hand else policy[0]
            return self._decided(Decision((steering, user[1]), uses_policy=True), steer_by_hand)
        if touching:  # auto, a person takes over
            return self._decided(Decision(user, uses_policy=False), True)
        if self._hold_auto:
            return self._decided(Decision(None, uses_policy=False, hold=held), False)
        if policy is None:
            return self._decided(Decision(None, uses_policy=True, hold="no action from the policy"), False)
        return self._decided(Decision((policy[0], max(-max_th, min(max_th, policy[1]))), uses_policy=True), False)

    # ---- what the page and the recorder read --------------------------------------------------

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def max_throttle(self) -> float:
        return self._max_throttle

    @property
    def controller(self) -> str | None:
        return self._controller

    @property
    def intervening(self) -> bool:
        """The last tick's command was a person's takeover from the policy."""
        return self._intervening

    @property
    def held(self) -> str:
        return self._held

    # ---- internals (lock held where noted) ------------------------------------------------------

    def _take_control(self, source: str) -> None:  # lock held
        if source != self._controller:
            log.info("control: %s", source)
        self._controller = source
        self._held = ""
        self._hold_auto = False

    def _release(self, reason: str) -> None:  # lock held
        log.warning("%s", reason)
        self._controller = None
        self._input = PersonInput("", 0.0, 0.0, False)
        self._held = reason
        self._hold_auto = self._intervening
        self._event("control-lost", reason)

    def _check_heartbeat(self, now: float) -> None:  # lock held
        src = self._controller
        if src is None or not self._input.heartbeat:
            return
        heard = self._last_heard.get(src)
        if heard is None or now - heard > self.config.heartbeat_s:
            silent = (now - heard) * 1e3 if heard is not None else float("inf")
            self._release(f"{src} silent for {silent:.0f} ms (heartbeat {self.config.heartbeat_s * 1e3:.0f} ms)")

    def _decided(self, decision: Decision, intervention: bool) -> Decision:
        if intervention and not self._intervening:
            self.interventions += 1
            self._event("intervention", "a person took over")
        elif self._intervening and not intervention and decision.command is not None:
            self._event("handback", "the policy drives again")
        if decision.command is not None:  # a hold keeps the flag: it is still the person's episode
            self._intervening = intervention
        return Decision(decision.command, decision.uses_policy, decision.hold, intervention)

    def _event(self, kind: str, message: str) -> None:
        if self._on_event is not None:
            self._on_event(kind, message)
