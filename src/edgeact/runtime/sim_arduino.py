"""A simulated Arduino running ``firmware/rover_bridge/rover_bridge.ino``, on a pseudo-terminal.

The Pi side opens :attr:`SimArduino.port` with real pyserial and real bytes cross a real
pty, so the code under test is the code that drives the rover. Like the sketch, it:

- boots with outputs neutral and prints ``READY,<protocol version>`` (``protocol_version``;
  None: a bare ``READY``, as sketches before version 2 did) (an Uno/Nano reboots when the host opens
  the port, through DTR: ``reset_on_connect``; bytes arriving while it boots are lost);
- checks every line's checksum and range, and silently drops bad ones (``rejected``);
- on ``A,s,t,seq`` sets its servo/ESC outputs and answers ``ACK,seq``; on ``N`` goes neutral;
- goes neutral and prints ``FAILSAFE`` once when no valid line arrives for ``watchdog_s``
  after the first one (a valid line re-arms it).

It also records each valid line with its arrival time, every FAILSAFE, and exposes its
outputs (:attr:`outputs`: steering, throttle in [-1, 1]) so the simulator camera can move
the simulated rover with what the "Arduino" drives. :meth:`unplug` / :meth:`replug` model a
USB cable pulled and put back: the port path (a symlink to the current pty) disappears and
comes back, while the board keeps running (its watchdog trips).

Linux/macOS only (``os.openpty``).
"""

from __future__ import annotations

import errno
import os
import select
import shutil
import tempfile
import threading
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgeact.errors import ConfigError
from edgeact.runtime import protocol as P


@dataclass(frozen=True)
class Received:
    t: float  # arrival time (time.monotonic)
    kind: str  # "A" or "N"
    steering: float
    throttle: float
    seq: int  # -1 for N


class SimArduino:
    """start() creates the pty and the board's thread; stop() removes them."""

    def __init__(
        self,
        watchdog_s: float = P.WATCHDOG_S,
        reset_on_connect: bool = True,
        boot_s: float = 0.05,
        realtime: bool = True,
        clock: Callable[[], float] = time.monotonic,
        protocol_version: int | None = P.PROTOCOL_VERSION,
    ) -> None:
        if not watchdog_s > 0:
            raise ConfigError(f"watchdog_s must be positive, got {watchdog_s}")
        self.watchdog_s = float(watchdog_s)
        self.reset_on_connect = reset_on_connect
        self.boot_s = float(boot_s)
        self.protocol_version = protocol_version
        self.realtime = realtime  # try SCHED_FIFO for the board's thread: it stands for a separate MCU
        self._clock = clock
        # What the board did, for tests and benchmarks (appended by the board thread only).
        self.commands: list[Received] = []
        self.rejected: list[tuple[float, bytes]] = []
        self.failsafe_times: list[float] = []
        self.boot_times: list[float] = []
        self.connect_times: list[float] = []
        self.disconnect_times: list[float] = []
        self._outputs: tuple[float, float] = (0.0, 0.0)
        self._in_failsafe = False
        self._armed = False
        self._last_valid = 0.0
        self._booting_until: float | None = None
        self._connected = False
        self._master: int | None = None
        self._slave_name: str | None = None
        self._dir: str | None = None
        self._link: str | None = None
        self._lines = P.LineBuffer()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._requests: list[tuple[str, threading.Event, bytes]] = []
        self._req_lock = threading.Lock()

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> SimArduino:
        if self._thread is not None:
            return self
        self._dir = tempfile.mkdtemp(prefix="edgeact-sim-arduino-")
        self._link = os.path.join(self._dir, "ttySIM0")
        self._open_pty()
        self._boot(self._clock(), announce=False)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sim-arduino", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._thread = None
        self._close_pty()
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> SimArduino:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- what the host and tests see ----------------------------------------------------

    @property
    def port(self) -> str:
        """Path to open with pyserial (stable across unplug/replug)."""
        if self._link is None:
            raise RuntimeError("SimArduino not started")
        return self._link

    @property
    def outputs(self) -> tuple[float, float]:
        """Current (steering, throttle) driven on the servo and ESC pins, in [-1, 1]."""
        return self._outputs

    @property
    def in_failsafe(self) -> bool:
        return self._in_failsafe

    @property
    def entered_failsafe(self) -> bool:
        """Whether the watchdog ever tripped."""
        return bool(self.failsafe_times)

    @property
    def connected(self) -> bool:
        """Whether a host has the port open."""
        return self._connected

    def drive_commands(self) -> list[Received]:
        return [c for c in list(self.commands) if c.kind == "A"]

    def inter_arrival(self, since: float | None = None, kind: str | None = "A") -> np.ndarray:
        """Seconds between consecutive received commands (of ``kind``; None: all)."""
        ts = [c.t for c in list(self.commands) if (kind is None or c.kind == kind) and (since is None or c.t >= since)]
        return np.diff(np.asarray(ts, dtype=np.float64))

    def inter_arrival_stats(self, since: float | None = None, kind: str | None = "A") -> dict:
        d = self.inter_arrival(since, kind) * 1e3
        if d.size == 0:
            return {"n": 0}
        return {
            "n": int(d.size),
            "mean_ms": float(d.mean()),
            "std_ms": float(d.std()),
            "p1_ms": float(np.percentile(d, 1)),
            "p50_ms": float(np.percentile(d, 50)),
            "p99_ms": float(np.percentile(d, 99)),
            "max_ms": float(d.max()),
        }

    def stats(self) -> dict:
        return {
            "commands": len(self.commands),
            "drive_commands": len(self.drive_commands()),
            "rejected": len(self.rejected),
            "failsafe_count": len(self.failsafe_times),
            "entered_failsafe": self.entered_failsafe,
            "boots": len(self.boot_times),
            "outputs": self.outputs,
            "inter_arrival": self.inter_arrival_stats(),
        }

    # ---- fault injection ----------------------------------------------------------------

    def unplug(self) -> None:
        """Pull the USB cable: the host's port errors and its path disappears; the board runs on."""
        self._request("unplug")

    def replug(self) -> None:
        """Put the cable back: the port path exists again (the host must reopen it)."""
        self._request("replug")

    def send_raw(self, data: bytes) -> None:
        """Write raw bytes to the host, as if the board printed them (tests: corrupt lines)."""
        self._request("raw", data)

    # ---- board thread -------------------------------------------------------------------

    def _request(self, what: str, data: bytes = b"") -> None:
        if self._thread is None:
            raise RuntimeError("SimArduino not started")
        done = threading.Event()
        with self._req_lock:
            self._requests.append((what, done, data))
        if not done.wait(timeout=2.0):
            raise RuntimeError(f"SimArduino did not handle {what!r}")

    def _handle_requests(self) -> None:
        with self._req_lock:
            reqs, self._requests = self._requests, []
        for what, done, data in reqs:
            if what == "unplug":
                self._close_pty()
                if self._connected:
                    self._connected = False
                    self.disconnect_times.append(self._clock())
            elif what == "replug":
                if self._master is None:
                    self._open_pty()
            elif what == "raw":
                self._write(data)
            done.set()

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line editing, before anyone opens it
        self._slave_name = os.ttyname(slave)
        os.close(slave)  # with no host holding the slave, the master sees POLLHUP
        self._master = master
        tmp = self._link + ".tmp"  # type: ignore[operator]
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(self._slave_name, tmp)
        os.replace(tmp, self._link)  # type: ignore[arg-type]

    def _close_pty(self) -> None:
        if self._link and os.path.lexists(self._link):
            os.unlink(self._link)
        if self._master is not None:
            try:
                os.close(self._master)
            except OSError:
                pass
            self._master = None

    def _boot(self, now: float, announce: bool = True) -> None:
        self._outputs = (0.0, 0.0)
        self._armed = False
        self._in_failsafe = False
        self._lines = P.LineBuffer()
        self.boot_times.append(now)
        if announce:
            self._write(P.encode_ready(self.protocol_version))

    def _write(self, data: bytes) -> None:
        if self._master is None or not self._connected:
            return  # nobody listening: bytes go nowhere, as on a UART with no host
        try:
            os.write(self._master, data)
        except OSError:
            pass

    def _run(self) -> None:
        if self.realtime and hasattr(os, "sched_setscheduler"):
            try:
                os.sched_setscheduler(threading.get_native_id(), os.SCHED_FIFO, os.sched_param(20))
            except OSError:
                pass  # not permitted: arrival times then include this thread's wake-up delays
        poller: select.poll | None = None
        polled_fd: int | None = None
        while not self._stop.is_set():
            if self._requests:
                self._handle_requests()
            now = self._clock()
            # Watchdog and boot, as the sketch's loop() does between bytes.
            if self._armed and not self._in_failsafe and now - self._last_valid > self.watchdog_s:
                self._in_failsafe = True
                self._outputs = (0.0, 0.0)
                self.failsafe_times.append(now)
                self._write(P.encode_failsafe())
            if self._booting_until is not None and now >= self._booting_until:
                self._booting_until = None
                self._boot(now)
            if self._master is None:
                time.sleep(0.005)
                continue
            if polled_fd != self._master:
                poller = select.poll()
                poller.register(self._master, select.POLLIN)
                polled_fd = self._master
            # Sleep until data, the watchdog deadline, or 20 ms (to notice requests and stop).
            wake = 0.02
            if self._armed and not self._in_failsafe:
                wake = min(wake, max(0.0, self._last_valid + self.watchdog_s - now) + 1e-4)
            if self._booting_until is not None:
                wake = min(wake, max(0.0, self._booting_until - now))
            events = poller.poll(wake * 1e3)  # type: ignore[union-attr]
            if not events:  # no hang-up: a host holds the port open
                self._on_connected(self._clock())
                continue
            mask = events[0][1]
            if mask & select.POLLIN:
                try:
                    data = os.read(self._master, 4096)
                except OSError as err:
                    if err.errno != errno.EIO:
                        raise
                    data = b""
                t = self._clock()
                if data:
                    self._on_connected(t)
                    if self._booting_until is None:
                        for line in self._lines.feed(data):
                            self._on_line(line, t)
                    continue
            if mask & (select.POLLHUP | select.POLLERR) or not mask & select.POLLIN:
                if self._connected:
                    self._connected = False
                    self.disconnect_times.append(self._clock())
                time.sleep(0.002)  # POLLHUP is level-triggered: don't spin while nobody is connected
                continue

    def _on_connected(self, t: float) -> None:
        if self._connected:
            return
        self._connected = True
        self.connect_times.append(t)
        if self.reset_on_connect:
            self._booting_until = t + self.boot_s  # DTR reset: reboot, then READY

    def _on_line(self, line: bytes, t: float) -> None:
        try:
            msg = P.decode_pi_line(line)
        except P.ProtocolError:
            self.rejected.append((t, bytes(line)))
            return
        self._last_valid = t
        self._armed = True
        self._in_failsafe = False
        if isinstance(msg, P.Drive):
            self._outputs = (P.from_wire(msg.steering), P.from_wire(msg.throttle))
            self.commands.append(Received(t, "A", self._outputs[0], self._outputs[1], msg.seq))
            self._write(P.encode_ack(msg.seq))
        else:
            self._outputs = (0.0, 0.0)
            self.commands.append(Received(t, "N", 0.0, 0.0, -1))
