"""The Pi ↔ Arduino serial protocol: line-based ASCII, every line checksummed, both ways.

Pi → Arduino::

    A,<steering>,<throttle>,<seq>*<xx>\\n    drive; steering/throttle integers in [-1000, 1000]
    N*<xx>\\n                                neutral now (not acknowledged)

Arduino → Pi::

    READY,<version>*<xx>\\n  after boot (an Arduino Uno/Nano reboots when the port is opened)
    ACK,<seq>*<xx>\\n      one per valid ``A`` line, echoing its sequence number
    FAILSAFE*<xx>\\n       the watchdog tripped (no valid line for its timeout): outputs neutral

``<xx>`` is the XOR of every byte before ``*``, as two upper-case hex digits (lower case is
rejected, so that no flipped bit in a line is ever accepted). Lines the Arduino sends carry
a checksum too, so a corrupt byte on either wire is rejected by the receiver rather than
read as a different number; the lines stay readable in a serial monitor. One ``\\r``
before ``\\n`` is tolerated. ``seq`` is an unsigned 16-bit counter that wraps (0…65535).
A single flipped bit anywhere in a line (payload, ``*`` or checksum digits) is always
rejected (tests/runtime/test_protocol.py, and tests/firmware/ on the sketch built for the AVR).

``<version>`` is :data:`PROTOCOL_VERSION`, the sketch's ``PROTOCOL_VERSION``: the Pi checks
it when the board announces itself (:func:`version_problem`), so an older sketch on the board
is named, and the user told to reflash it, rather than misread. Sketches before version 2
sent a bare ``READY``.

Pure functions, no I/O: the Pi side (``actuators.py``), the simulated Arduino
(``sim_arduino.py``) and the sketch (``firmware/rover_bridge/rover_bridge.ino``) all follow
this module.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeact.errors import ProtocolError

PROTOCOL_VERSION = 2  # firmware/rover_bridge/rover_bridge.ino must announce the same
SCALE = 1000  # wire integers per unit: 1.0 ↔ 1000
SEQ_MOD = 1 << 16
MAX_LINE = 48  # longest valid line is "A,-1000,-1000,65535*XX" (22 bytes); receivers drop longer ones
BAUDRATE = 115200
WATCHDOG_S = 0.25  # the sketch's WATCHDOG_MS: neutral when no valid line arrives for this long


@dataclass(frozen=True)
class Drive:
    steering: int  # [-1000, 1000]
    throttle: int  # [-1000, 1000]
    seq: int


@dataclass(frozen=True)
class Neutral:
    pass


@dataclass(frozen=True)
class Ready:
    version: int | None  # None: a sketch from before protocol versions (bare READY)


@dataclass(frozen=True)
class Ack:
    seq: int


@dataclass(frozen=True)
class Failsafe:
    pass


PiMessage = Drive | Neutral
ArduinoMessage = Ready | Ack | Failsafe


def checksum(payload: bytes) -> int:
    """XOR of the bytes of ``payload`` (everything before ``*``)."""
    x = 0
    for b in payload:
        x ^= b
    return x


def frame(payload: str | bytes) -> bytes:
    """``payload`` → ``payload*XX\\n``."""
    raw = payload.encode("ascii") if isinstance(payload, str) else bytes(payload)
    return raw + b"*%02X\n" % checksum(raw)


def to_wire(value: float) -> int:
    """A command in [-1, 1] → wire integer in [-1000, 1000] (clamped; NaN → 0)."""
    v = float(value)
    if v != v:  # NaN
        return 0
    return max(-SCALE, min(SCALE, int(round(v * SCALE))))


def from_wire(value: int) -> float:
    return value / SCALE


# ---- Pi → Arduino -----------------------------------------------------------------------

def encode_drive(steering: float, throttle: float, seq: int) -> bytes:
    """``A,<steering>,<throttle>,<seq>*XX\\n`` from commands in [-1, 1] (clamped)."""
    return frame(f"A,{to_wire(steering)},{to_wire(throttle)},{int(seq) % SEQ_MOD}")


def encode_neutral() -> bytes:
    return frame("N")


# ---- Arduino → Pi -----------------------------------------------------------------------

def encode_ready(version: int | None = PROTOCOL_VERSION) -> bytes:
    """``READY,<version>``; ``version=None`` gives the bare ``READY`` of sketches before version 2."""
    return frame("READY" if version is None else f"READY,{int(version)}")


def encode_ack(seq: int) -> bytes:
    return frame(f"ACK,{int(seq) % SEQ_MOD}")


def encode_failsafe() -> bytes:
    return frame("FAILSAFE")


# ---- decoding ---------------------------------------------------------------------------

def unframe(line: bytes | str) -> str:
    """Check the checksum of one line (with or without its ``\\n``); return the payload.

    Raises ProtocolError on a missing ``*``, a malformed or wrong checksum, non-ASCII
    bytes or an over-long line.
    """
    raw = line.encode("latin-1") if isinstance(line, str) else bytes(line)
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    if raw.endswith(b"\r"):  # one, as the sketch does
        raw = raw[:-1]
    if len(raw) > MAX_LINE:
        raise ProtocolError(f"line too long ({len(raw)} bytes)")
    star = raw.rfind(b"*")
    if star < 0:
        raise ProtocolError(f"no checksum in {raw!r}")
    payload, tail = raw[:star], raw[star + 1:]
    if len(tail) != 2 or any(c not in b"0123456789ABCDEF" for c in tail):
        raise ProtocolError(f"malformed checksum in {raw!r}")
    want = int(tail, 16)
    got = checksum(payload)
    if got != want:
        raise ProtocolError(f"checksum mismatch in {raw!r}: computed {got:02X}, line says {want:02X}")
    if any(b < 0x20 or b > 0x7E for b in payload):
        raise ProtocolError(f"non-printable byte in {raw!r}")
    return payload.decode("ascii")


def _int_field(text: str, lo: int, hi: int, what: str) -> int:
    body = text[1:] if text[:1] == "-" else text
    if not body.isdigit() or len(body) > 5:
        raise ProtocolError(f"{what} {text!r} is not an integer")
    v = int(text)
    if not lo <= v <= hi:
        raise ProtocolError(f"{what} {v} out of range [{lo}, {hi}]")
    return v


def decode_pi_line(line: bytes | str) -> PiMessage:
    """Parse a line the Pi sends (what the Arduino receives). Raises ProtocolError."""
    payload = unframe(line)
    if payload == "N":
        return Neutral()
    parts = payload.split(",")
    if parts[0] == "A" and len(parts) == 4:
        return Drive(
            steering=_int_field(parts[1], -SCALE, SCALE, "steering"),
            throttle=_int_field(parts[2], -SCALE, SCALE, "throttle"),
            seq=_int_field(parts[3], 0, SEQ_MOD - 1, "seq"),
        )
    raise ProtocolError(f"unknown command {payload!r}")


def decode_arduino_line(line: bytes | str) -> ArduinoMessage:
    """Parse a line the Arduino sends (what the Pi receives). Raises ProtocolError."""
    payload = unframe(line)
    if payload == "READY":
        return Ready(version=None)
    if payload == "FAILSAFE":
        return Failsafe()
    parts = payload.split(",")
    if parts[0] == "ACK" and len(parts) == 2:
        return Ack(seq=_int_field(parts[1], 0, SEQ_MOD - 1, "seq"))
    if parts[0] == "READY" and len(parts) == 2:
        return Ready(version=_int_field(parts[1], 0, SEQ_MOD - 1, "protocol version"))
    raise ProtocolError(f"unknown message {payload!r}")


def version_problem(ready: Ready) -> str | None:
    """Why the board that sent ``ready`` cannot be driven by this edgeact, or None if it can."""
    if ready.version == PROTOCOL_VERSION:
        return None
    found = ("an old rover_bridge sketch (its READY carries no protocol version)" if ready.version is None
             else f"rover_bridge protocol version {ready.version}")
    return (f"the Arduino runs {found}, but this edgeact speaks protocol version {PROTOCOL_VERSION}: "
            f"flash the sketch that comes with it (edgeact firmware flash --port PORT --board uno|nano)")


class LineBuffer:
    """Splits a byte stream into lines; drops over-long lines (counted in ``overflows``)."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self._buf = bytearray()
        self._discarding = False
        self.overflows = 0

    def feed(self, data: bytes) -> list[bytes]:
        lines: list[bytes] = []
        data = bytes(data)
        start = 0
        while True:
            nl = data.find(b"\n", start)
            if nl < 0:
                self._append(data[start:])
                break
            self._append(data[start:nl])
            if self._discarding:
                self._discarding = False
            else:
                lines.append(bytes(self._buf))
            self._buf.clear()
            start = nl + 1
        return lines

    def _append(self, part: bytes) -> None:
        if self._discarding or not part:
            return
        self._buf.extend(part)
        if len(self._buf) > self.max_line + 1:  # +1 for a trailing \r
            self._buf.clear()
            self._discarding = True
            self.overflows += 1
