"""A gamepad plugged into the Pi (Linux evdev), as a driver's input.

Button map (Linux event codes, so any pad the kernel knows maps the same way; on an Xbox
layout A is south, B east, X west, Y north):

    left stick X (ABS_X)        steering
    right stick Y (ABS_RY)      throttle (up = forward)
    A      (BTN_SOUTH)          record on/off
    B      (BTN_EAST)           emergency stop (press again: release)
    X      (BTN_WEST)           next mode (user → auto-steer → auto)
    Y      (BTN_NORTH)          re-record (drop the episode in progress, start again)
    Back   (BTN_SELECT)         erase the last episode
    RB / LB (BTN_TR / BTN_TL)   max throttle +0.05 / -0.05

Unplugging it (or any read error) is reported at once (neutral if it was driving) and the
reader tries to reopen the device every second. ``evdev`` is imported only to open a real
device: ``pip install evdev`` on the Pi.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from edgeact.errors import ConfigError
from edgeact.teleop.messages import Button, Control, Message, SetMode, StepMaxThrottle

log = logging.getLogger("edgeact.drive")

# linux/input-event-codes.h (kernel ABI; what evdev.ecodes holds)
EV_KEY, EV_ABS = 0x01, 0x03
ABS_X, ABS_RY = 0x00, 0x04
BTN_SOUTH, BTN_EAST, BTN_NORTH, BTN_WEST = 0x130, 0x131, 0x133, 0x134
BTN_TL, BTN_TR, BTN_SELECT = 0x136, 0x137, 0x13A

BUTTON_MAP: dict[int, Message] = {
    BTN_SOUTH: Button("record"),
    BTN_EAST: Button("estop_toggle"),
    BTN_WEST: SetMode("next"),
    BTN_NORTH: Button("rerecord"),
    BTN_SELECT: Button("erase_last"),
    BTN_TR: StepMaxThrottle(0.05),
    BTN_TL: StepMaxThrottle(-0.05),
}
SOURCE = "gamepad"


class InputDevice(Protocol):
    """What we use of ``evdev.InputDevice``."""

    name: str

    def read_loop(self) -> Iterator[Any]: ...  # events with .type, .code, .value
    def absinfo(self, code: int) -> Any: ...  # .min, .max
    def close(self) -> None: ...


def open_evdev(path: str) -> InputDevice:
    try:
        import evdev
    except ImportError as err:
        raise ConfigError("--gamepad needs the evdev package: pip install evdev (Linux only)") from err
    return evdev.InputDevice(path)


@dataclass
class _Axis:
    lo: float
    hi: float
    invert: bool = False

    def normalize(self, raw: int) -> float:
        span = self.hi - self.lo
        v = (2.0 * (raw - self.lo) / span - 1.0) if span > 0 else 0.0
        return -v if self.invert else v


class Gamepad:
    """Reads one device in a thread; sends ``sink(SOURCE, message)``, ``lost(SOURCE, reason)`` on loss."""

    def __init__(self, path: str, sink: Callable[[str, Message], object], lost: Callable[[str, str], None],
                 open_device: Callable[[str], InputDevice] = open_evdev, deadzone: float = 0.08,
                 retry_s: float = 1.0) -> None:
        self.path = path
        self.sink = sink
        self.lost = lost
        self.open_device = open_device
        self.deadzone = deadzone
        self.retry_s = retry_s
        self.connected = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._device: InputDevice | None = None
        self._steering = 0.0
        self._throttle = 0.0

    def start(self) -> None:
        """Open the device now (a wrong path fails here, with the fix), then read in a thread."""
        try:
            self._device = self.open_device(self.path)
        except OSError as err:
            raise ConfigError(f"cannot open the gamepad {self.path}: {err} (list them with `ls -l /dev/input/by-id/`; "
                              "the user needs to be in the 'input' group)") from err
        self.connected = True
        log.info("gamepad: %s (%s)", getattr(self._device, "name", "?"), self.path)
        self._thread = threading.Thread(target=self._run, name="gamepad", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        dev = self._device
        if dev is not None:
            try:
                dev.close()  # unblocks read_loop
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            dev = self._device
            if dev is None:
                try:
                    dev = self._device = self.open_device(self.path)
                    self.connected = True
                    log.warning("gamepad back: %s", self.path)
                except (OSError, ConfigError):
                    self._stop.wait(self.retry_s)
                    continue
            try:
                self._read(dev)
                reason = "gamepad stopped sending"
            except (OSError, ValueError) as err:  # ENODEV when unplugged
                reason = f"gamepad lost ({err})"
            if self._stop.is_set():
                return
            self.connected = False
            self._device = None
            self._steering = self._throttle = 0.0
            log.warning("%s", reason)
            self.lost(SOURCE, reason)
            try:
                dev.close()
            except OSError:
                pass
            self._stop.wait(self.retry_s)

    def _read(self, dev: InputDevice) -> None:
        axes = {ABS_X: self._axis(dev, ABS_X, invert=False), ABS_RY: self._axis(dev, ABS_RY, invert=True)}
        for ev in dev.read_loop():
            if self._stop.is_set():
                return
            if ev.type == EV_ABS and ev.code in axes:
                v = axes[ev.code].normalize(ev.value)
                v = 0.0 if abs(v) < self.deadzone else max(-1.0, min(1.0, v))
                if ev.code == ABS_X:
                    self._steering = v
                else:
                    self._throttle = v
                active = self._steering != 0.0 or self._throttle != 0.0
                self.sink(SOURCE, Control(self._steering, self._throttle, active))
            elif ev.type == EV_KEY and ev.value == 1 and ev.code in BUTTON_MAP:  # press, not release/repeat
                self.sink(SOURCE, BUTTON_MAP[ev.code])

    @staticmethod
    def _axis(dev: InputDevice, code: int, invert: bool) -> _Axis:
        try:
            info = dev.absinfo(code)
            return _Axis(float(info.min), float(info.max), invert)
        except (OSError, AttributeError, KeyError, TypeError):
            return _Axis(-32768.0, 32767.0, invert)
