"""What the drive page (and the gamepad) may ask of the rover, parsed and checked.

The page speaks JSON over its socket, one object per message::

    {"type": "control", "steering": -0.4, "throttle": 0.6, "active": true}   (heartbeat: every 100 ms)
    {"type": "mode", "mode": "auto"}          user | auto-steer | auto | next
    {"type": "max_throttle", "value": 0.4}
    {"type": "record"}  {"type": "rerecord"}  {"type": "erase_last"}
    {"type": "estop"}   {"type": "release"}   {"type": "estop_toggle"}
    {"type": "latency", "ms": [41.2, 39.8]}   video latency the page measured (capture → shown)
    {"type": "frame"}                         the page received a video frame: send the next

Anything else (not JSON, not an object, an unknown type, a missing or wrong field, too
long) is a :class:`MessageError`: the server logs it and ignores the message.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

MAX_MESSAGE_BYTES = 4096
BUTTONS = ("record", "rerecord", "erase_last", "estop", "release", "estop_toggle")


class MessageError(ValueError):
    """A message the rover does not understand; ignored."""


@dataclass(frozen=True)
class Control:
    steering: float
    throttle: float
    active: bool


@dataclass(frozen=True)
class SetMode:
    mode: str


@dataclass(frozen=True)
class SetMaxThrottle:
    value: float


@dataclass(frozen=True)
class StepMaxThrottle:
    delta: float  # from the gamepad's bumpers


@dataclass(frozen=True)
class Button:
    name: str  # one of BUTTONS


@dataclass(frozen=True)
class LatencyReport:
    ms: tuple[float, ...]


@dataclass(frozen=True)
class FrameReceived:
    """The page received the video frame last sent (the server's flow control, not a person's input)."""


Message = Control | SetMode | SetMaxThrottle | StepMaxThrottle | Button | LatencyReport | FrameReceived


def _number(obj: dict, key: str, lo: float, hi: float) -> float:
    v = obj.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise MessageError(f"{key!r} must be a number, got {v!r}")
    if not lo <= v <= hi:
        raise MessageError(f"{key!r} must be in [{lo:g}, {hi:g}], got {v}")
    return float(v)


def parse_message(raw: str | bytes) -> Message:
    if len(raw) > MAX_MESSAGE_BYTES:
        raise MessageError(f"message of {len(raw)} bytes (limit {MAX_MESSAGE_BYTES})")
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise MessageError(f"not JSON: {err}") from None
    if not isinstance(obj, dict):
        raise MessageError(f"expected a JSON object, got {type(obj).__name__}")
    kind = obj.get("type")
    if kind == "control":
        active = obj.get("active", False)
        if not isinstance(active, bool):
            raise MessageError(f"'active' must be true or false, got {active!r}")
        return Control(_number(obj, "steering", -1, 1), _number(obj, "throttle", -1, 1), active)
    if kind == "mode":
        mode = obj.get("mode")
        if not isinstance(mode, str) or len(mode) > 32:
            raise MessageError(f"'mode' must be a mode name, got {mode!r}")
        return SetMode(mode)
    if kind == "max_throttle":
        return SetMaxThrottle(_number(obj, "value", 0, 1))
    if kind in BUTTONS:
        return Button(kind)
    if kind == "frame":
        return FrameReceived()
    if kind == "latency":
        ms = obj.get("ms")
        if not isinstance(ms, list) or len(ms) > 256:
            raise MessageError("'ms' must be a list of at most 256 numbers")
        return LatencyReport(tuple(_number({"v": v}, "v", 0, 60_000) for v in ms))
    raise MessageError(f"unknown message type {kind!r}")
