"""Where commands go: the Arduino over serial (protocol.py), a simulated one, or nowhere.

Every actuator here follows :class:`edgeact.runtime.interfaces.Actuator`.

``open_actuator(spec)`` builds one from a CLI string: a device path (``/dev/ttyUSB0``), any
pyserial URL (``loop://``, ``rfc2217://host:port``), ``sim`` (a :class:`SimArduino` on a
pseudo-terminal, owned by the actuator) or ``none`` (dry run: records, sends nothing).
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from edgeact.errors import ActuatorError, ConfigError
from edgeact.runtime import protocol as P
from edgeact.runtime.interfaces import ActuatorEventSink
from edgeact.runtime.sim_arduino import SimArduino
from edgeact.runtime.telemetry import stats_ms

log = logging.getLogger("edgeact.runtime")

class NullActuator:
    """Dry run: keeps the commands it is given (``history``), sends nothing anywhere."""

    port = "none"

    def __init__(self, keep: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.on_event: ActuatorEventSink | None = None  # a dry run has no events
        self.connected = False
        self.status = "not started"
        self.last_sent: tuple[float, float] = (0.0, 0.0)
        self.history: collections.deque = collections.deque(maxlen=keep)
        self._clock = clock
        self.sent = 0
        self.neutral_sent = 0

    def start(self) -> None:
        self.connected = True
        self.status = "ok"

    def stop(self) -> None:
        if self.connected:
            self.neutral()
        self.connected = False
        self.status = "stopped"

    def send(self, steering: float, throttle: float) -> bool:
        self.last_sent = (P.from_wire(P.to_wire(steering)), P.from_wire(P.to_wire(throttle)))
        self.history.append((self._clock(), "A", *self.last_sent))
        self.sent += 1
        return True

    def neutral(self) -> bool:
        self.last_sent = (0.0, 0.0)
        self.history.append((self._clock(), "N", 0.0, 0.0))
        self.neutral_sent += 1
        return True

    def outputs(self) -> tuple[float, float]:
        return self.last_sent

    def stats(self, recent: int | None = None) -> dict[str, Any]:
        return {"port": self.port, "sent": self.sent, "acked": 0, "neutral_sent": self.neutral_sent}

    def board_stats(self) -> dict[str, Any] | None:
        return None


class SerialActuator:
    """The Pi side of the serial protocol over pyserial.

    ``start()`` opens the port (ActuatorError if it cannot), starts a reader thread that
    parses the Arduino's lines (READY, ACK, FAILSAFE; checksummed, corrupt ones counted and
    dropped) and, when ``wait_ready_s`` > 0, waits that long for READY (an Uno/Nano reboots
    when the port opens and ignores bytes for ~1.5 s); a READY with another protocol version
    than ours (an old sketch) raises ActuatorError naming it. It then sends neutral.

    If the port fails (cable pulled, board reset), ``connected`` turns False with the
    reason in ``status``, sends return False, and the reader thread reopens the port every
    ``reconnect_s`` until it is back. ``stop()`` sends neutral, then closes.

    ``on_event(kind, message)`` is told about: "serial-lost", "serial-reconnected",
    "arduino-ready" (a READY after start: the board rebooted), "arduino-failsafe".
    """

    def __init__(
        self,
        port: str,
        baudrate: int = P.BAUDRATE,
        *,
        wait_ready_s: float = 0.0,
        reconnect_s: float = 0.5,
        write_timeout_s: float = 0.05,
        on_event: ActuatorEventSink | None = None,
        sim: SimArduino | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.port = str(port)
        self.baudrate = int(baudrate)
        self.wait_ready_s = float(wait_ready_s)
        self.reconnect_s = float(reconnect_s)
        self.write_timeout_s = float(write_timeout_s)
        self.on_event = on_event
        self.sim = sim  # a SimArduino this actuator owns (started and stopped with it)
        self._clock = clock
        self._serial = None
        self._write_lock = threading.Lock()
        self._lost_reason: str | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._seq = 0
        self._pending: collections.OrderedDict[int, float] = collections.OrderedDict()
        self._pending_lock = threading.Lock()
        self.connected = False
        self.status = "not started"
        self.last_sent: tuple[float, float] = (0.0, 0.0)
        self.last_ack_t: float | None = None
        self.firmware_problem: str | None = None  # the board's sketch speaks another protocol version
        # counters
        self.sent = 0
        self.acked = 0
        self.neutral_sent = 0
        self.send_failures = 0
        self.rx_rejected = 0
        self.ready_count = 0
        self.failsafe_count = 0
        self.lost_count = 0
        self.reconnects = 0
        self.ack_latency_s: collections.deque = collections.deque(maxlen=100_000)

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        if self.sim is not None:
            self.sim.start()
            self.port = self.sim.port
        try:
            self._serial = self._open()
        except Exception as err:
            if self.sim is not None:
                self.sim.stop()
            raise ActuatorError(f"cannot open serial port {self.port!r}: {err}. Check the cable, the port "
                                f"name (ls /dev/ttyUSB* /dev/ttyACM*) and that you are in the 'dialout' group") from err
        self.connected = True
        self.status = "ok"
        self._stop.clear()
        self._thread = threading.Thread(target=self._reader, name="serial-reader", daemon=True)
        self._thread.start()
        if self.wait_ready_s > 0 and self._ready.wait(self.wait_ready_s) and self.firmware_problem:
            problem = self.firmware_problem
            self.stop()
            raise ActuatorError(f"serial {self.port}: {problem}")
        if self.wait_ready_s > 0 and not self._ready.is_set():
            log.warning("serial %s: no READY from the Arduino within %.1f s; sending anyway "
                        "(is rover_bridge.ino flashed and the baud rate %d?)",
                        self.port, self.wait_ready_s, self.baudrate)
        self.neutral()

    def stop(self) -> None:
        if self._thread is None:
            return
        # Neutral twice: one corrupted line must not leave the rover moving (the watchdog is the backstop).
        for _ in range(2):
            self.neutral()
        with self._write_lock:
            if self._serial is not None:
                try:
                    self._serial.flush()
                except Exception:  # noqa: BLE001 - a failed flush at stop changes nothing
                    pass
        time.sleep(0.02)  # let the last ACKs come back for the counts
        self._stop.set()
        self._thread.join(timeout=1.0)
        self._thread = None
        with self._write_lock:
            self._close_serial()
        self.connected = False
        self.status = "stopped"
        if self.sim is not None:
            self.sim.stop()

    def __enter__(self) -> SerialActuator:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- commands -----------------------------------------------------------------------

    def send(self, steering: float, throttle: float) -> bool:
        """Send ``A,...``; False (nothing sent) while the port is lost."""
        seq = self._seq
        self._seq = (self._seq + 1) % P.SEQ_MOD
        line = P.encode_drive(steering, throttle, seq)
        with self._pending_lock:  # before the write: the ACK can be back before write() returns
            self._pending[seq] = self._clock()
            while len(self._pending) > 1024:
                self._pending.popitem(last=False)
        ok = self._write(line)
        if ok:
            self.sent += 1
            self.last_sent = (P.from_wire(P.to_wire(steering)), P.from_wire(P.to_wire(throttle)))
        else:
            with self._pending_lock:
                self._pending.pop(seq, None)
        return ok

    def neutral(self) -> bool:
        ok = self._write(P.encode_neutral())
        if ok:
            self.neutral_sent += 1
            self.last_sent = (0.0, 0.0)
        return ok

    def outputs(self) -> tuple[float, float]:
        """The simulated board's servo/ESC outputs when it is one, else the last command delivered."""
        return self.sim.outputs if self.sim is not None else self.last_sent

    def board_stats(self) -> dict[str, Any] | None:
        return self.sim.stats() if self.sim is not None else None

    def stats(self, recent: int | None = None) -> dict[str, Any]:
        with self._pending_lock:
            unacked = len(self._pending)
        # A live view (the page's status, several a second) takes the newest acks from the deque's end:
        # the whole history is up to 100,000 of them, and sorting it each time stalled the control loop.
        acks = self.ack_latency_s
        latencies = list(itertools.islice(reversed(acks), recent)) if recent else list(acks)
        return {
            "port": self.port,
            "sent": self.sent,
            "acked": self.acked,
            "unacked": unacked,
            "neutral_sent": self.neutral_sent,
            "send_failures": self.send_failures,
            "rx_rejected": self.rx_rejected,
            "ready_count": self.ready_count,
            "failsafe_count": self.failsafe_count,
            "lost_count": self.lost_count,
            "reconnects": self.reconnects,
            "ack_latency_ms": stats_ms(latencies),
        }

    # ---- internals ----------------------------------------------------------------------

    def _open(self):
        import serial  # pyserial

        kwargs = dict(baudrate=self.baudrate, timeout=0.02, write_timeout=self.write_timeout_s)
        if "://" not in self.port:
            kwargs["exclusive"] = True  # a second program on the same port garbles both
        return serial.serial_for_url(self.port, **kwargs)

    def _write(self, data: bytes) -> bool:
        with self._write_lock:
            if self._serial is None or self._lost_reason is not None:
                self.send_failures += 1
                return False
            try:
                self._serial.write(data)
                return True
            except Exception as err:  # noqa: BLE001 - SerialException, OSError, SerialTimeoutException
                self.send_failures += 1
                self._mark_lost(f"write failed: {err}")
                return False

    def _mark_lost(self, reason: str) -> None:
        if self._lost_reason is not None:
            return
        self._lost_reason = reason
        self.connected = False
        self.status = f"serial lost ({self.port}): {reason}"
        self.lost_count += 1
        self._emit("serial-lost", self.status)

    def _close_serial(self) -> None:
        if self._serial is not None:
            try:
                self._serial.close()
            except Exception:  # noqa: BLE001 - closing a lost port
                pass
            self._serial = None

    def _emit(self, kind: str, message: str) -> None:
        if self.on_event is not None:
            try:
                self.on_event(kind, message)
            except Exception:
                log.exception("actuator event handler failed")

    def _reader(self) -> None:
        lines = P.LineBuffer()
        next_try = 0.0
        await_ready_until: float | None = None
        while not self._stop.is_set():
            ser = self._serial
            if ser is None or self._lost_reason is not None:
                with self._write_lock:
                    self._close_serial()
                now = time.monotonic()
                if now < next_try:
                    self._stop.wait(min(0.05, next_try - now))
                    continue
                next_try = now + self.reconnect_s
                try:
                    new = self._open()
                except Exception:  # noqa: BLE001 - still gone
                    continue
                lines = P.LineBuffer()
                self._ready.clear()
                with self._write_lock:
                    self._serial = new
                    self._lost_reason = None
                self.reconnects += 1
                if self.wait_ready_s > 0:
                    # The board reboots on open: stay "not connected" (the loop holds neutral) until READY.
                    self.status = f"serial {self.port} reopened, waiting for READY"
                    await_ready_until = time.monotonic() + self.wait_ready_s
                else:
                    self._set_connected(f"serial {self.port} reopened")
                continue
            if await_ready_until is not None and (self._ready.is_set() or time.monotonic() >= await_ready_until):
                await_ready_until = None
                self._set_connected(f"serial {self.port} reopened" + ("" if self._ready.is_set() else " (no READY)"))
            try:
                data = ser.read(ser.in_waiting or 1)
            except Exception as err:  # noqa: BLE001 - any read failure means the port is lost
                with self._write_lock:
                    self._mark_lost(f"read failed: {err}")
                continue
            if not data:
                continue
            t = self._clock()
            for raw in lines.feed(data):
                self._on_line(raw, t)

    def _set_connected(self, message: str) -> None:
        with self._write_lock:
            if self._lost_reason is not None:
                return
            self.connected = True
            self.status = "ok"
        self._emit("serial-reconnected", message)

    def _on_line(self, raw: bytes, t: float) -> None:
        if not raw.strip():
            return
        try:
            msg = P.decode_arduino_line(raw)
        except P.ProtocolError as err:
            self.rx_rejected += 1
            log.debug("serial %s: rejected line: %s", self.port, err)
            return
        if isinstance(msg, P.Ack):
            with self._pending_lock:
                t_sent = self._pending.pop(msg.seq, None)
            if t_sent is not None:
                self.acked += 1
                self.last_ack_t = t
                self.ack_latency_s.append(t - t_sent)
        elif isinstance(msg, P.Ready):
            self.ready_count += 1
            self.firmware_problem = P.version_problem(msg)
            if self.firmware_problem:  # never drive a board that may read our lines differently
                with self._write_lock:
                    self._mark_lost(self.firmware_problem)
            first = not self._ready.is_set()
            self._ready.set()
            if not first:
                self._emit("arduino-ready", "the Arduino rebooted (READY mid-run): brown-out or reset?")
        elif isinstance(msg, P.Failsafe):
            self.failsafe_count += 1
            self._emit("arduino-failsafe", "the Arduino's watchdog tripped (FAILSAFE): it got no valid command in time")


def open_actuator(
    spec: str,
    *,
    baudrate: int = P.BAUDRATE,
    watchdog_s: float = P.WATCHDOG_S,
    wait_ready_s: float | None = None,
    on_event: ActuatorEventSink | None = None,
) -> NullActuator | SerialActuator:
    """Build (not start) an actuator from a CLI string; see the module docstring."""
    spec = str(spec).strip()
    if not spec:
        raise ConfigError("empty --actuator: give a serial port (/dev/ttyUSB0), a pyserial URL, 'sim' or 'none'")
    low = spec.lower()
    if low in ("none", "null", "dry-run", "dryrun"):
        return NullActuator()
    if low == "sim" or low.startswith("sim:"):
        sim = SimArduino(watchdog_s=watchdog_s)
        return SerialActuator("(sim)", baudrate, wait_ready_s=1.0 if wait_ready_s is None else wait_ready_s,
                              on_event=on_event, sim=sim)
    # A real board reboots when the port opens (DTR): wait for its READY.
    default_wait = 0.0 if "://" in spec else 2.5
    return SerialActuator(spec, baudrate, wait_ready_s=default_wait if wait_ready_s is None else wait_ready_s,
                          on_event=on_event)
