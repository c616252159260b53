"""Safety on its own: fault bookkeeping, the emergency-stop latch, signals and keys."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from edgeact.errors import ConfigError
from edgeact.runtime.safety import (
    CAMERA_STALL,
    ESTOP,
    SERIAL_LOST,
    STALE_CHUNK,
    EmergencyStop,
    KeyboardEStop,
    SafetyConfig,
    SafetyMonitor,
    SignalGuard,
)
from polling import wait_for


def test_config_refuses_values_that_would_never_go_neutral():
    for bad in ({"max_chunk_age_s": 0}, {"camera_stall_s": -1}, {"startup_grace_s": 0}, {"max_backend_errors": 0}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            SafetyConfig(**bad)


def test_a_fault_forces_neutral_until_its_condition_clears():
    events = []
    mon = SafetyMonitor(on_event=lambda event, **kw: events.append((event, kw["kind"], kw["t"])))
    assert not mon.update(0.0, {STALE_CHUNK: None, SERIAL_LOST: None})
    assert mon.update(1.0, {STALE_CHUNK: "chunk 600 ms old", SERIAL_LOST: None})
    assert mon.update(1.5, {STALE_CHUNK: "chunk 700 ms old", SERIAL_LOST: "port gone"})
    assert mon.reasons() == ["stale-chunk: chunk 600 ms old", "serial-lost: port gone"]  # the first message stays
    assert mon.update(2.0, {STALE_CHUNK: None, SERIAL_LOST: "port gone"})
    assert not mon.update(2.5, {STALE_CHUNK: None, SERIAL_LOST: None})
    assert events == [("fault", STALE_CHUNK, 1.0), ("fault", SERIAL_LOST, 1.5), ("cleared", STALE_CHUNK, 2.0),
                      ("cleared", SERIAL_LOST, 2.5)]
    assert [(r.kind, r.t_start, r.t_end) for r in mon.history] == [(STALE_CHUNK, 1.0, 2.0), (SERIAL_LOST, 1.5, 2.5)]


def test_a_latched_fault_holds_neutral_whatever_the_conditions():
    events = []
    mon = SafetyMonitor(on_event=lambda event, **kw: events.append((event, kw.get("latched"))))
    mon.latch(ESTOP, "SIGUSR1", 3.0)
    mon.latch(ESTOP, "key", 4.0)  # once latched, a second trigger changes nothing
    assert mon.update(5.0, {CAMERA_STALL: None})
    assert mon.update(60.0, {})
    assert mon.reasons() == ["emergency-stop: SIGUSR1"] and events == [("fault", True)]
    assert len(mon.history) == 1 and mon.history[0].t_end is None


def test_emergency_stop_keeps_its_first_reason_across_threads():
    estop = EmergencyStop()
    assert not estop.triggered
    threads = [threading.Thread(target=estop.trigger, args=(f"t{i}",)) for i in range(8)]
    estop.trigger("first")
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert estop.triggered and estop.reason == "first"


def test_signal_guard_routes_signals_and_restores_the_handlers():
    got = []
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
    guard = SignalGuard(on_stop=lambda name: got.append(("stop", name)), on_estop=lambda name: got.append(("e", name)))
    assert guard.install()
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        os.kill(os.getpid(), signal.SIGTERM)
        assert wait_for(lambda: len(got) == 2, 2.0)
        with pytest.raises(KeyboardInterrupt):  # a second stop signal: the clean stop is stuck
            os.kill(os.getpid(), signal.SIGINT)
            wait_for(lambda: False, 2.0)
    finally:
        guard.restore()
    assert got == [("e", "SIGUSR1"), ("stop", "SIGTERM")]
    assert {s: signal.getsignal(s) for s in before} == before


def test_signal_guard_does_nothing_off_the_main_thread():
    result = []
    guard = SignalGuard(on_stop=print, on_estop=print)
    th = threading.Thread(target=lambda: result.append(guard.install()))
    th.start()
    th.join()
    assert result == [False]


def test_keyboard_emergency_stop_on_a_terminal(tmp_path):
    master, slave = os.openpty()
    got = []
    with os.fdopen(slave, "rb", buffering=0) as stream:
        keys = KeyboardEStop(on_estop=got.append, on_quit=lambda r: got.append("quit"), stream=stream)
        assert keys.start()
        try:
            os.write(master, b"xq ")
            assert wait_for(lambda: got == ["quit", "key"], 2.0)
        finally:
            keys.stop()
    os.close(master)
    with open(tmp_path / "not-a-tty", "w+b") as plain:  # no terminal: no keys, nothing changed
        assert not KeyboardEStop(on_estop=got.append, on_quit=got.append, stream=plain).start()
