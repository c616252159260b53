"""The serial link end to end: SerialActuator (pyserial) ↔ pty ↔ SimArduino."""

import time

import pytest
import serial

from edgeact.errors import ActuatorError
from edgeact.runtime import protocol as P
from edgeact.runtime.actuators import NullActuator, SerialActuator, open_actuator
from edgeact.runtime.sim_arduino import SimArduino
from polling import wait_for


@pytest.fixture
def board():
    sim = SimArduino(watchdog_s=0.1, realtime=False).start()
    yield sim
    sim.stop()


def read_lines(port, n, timeout=2.0):
    buf = P.LineBuffer()
    out = []
    end = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < end:
        out += buf.feed(port.read(port.in_waiting or 1))
    return out


def test_raw_pyserial_commands_acks_and_ready(board):
    with serial.Serial(board.port, 115200, timeout=0.05) as port:
        assert read_lines(port, 1) == [P.encode_ready()[:-1]]  # the board reboots when the port opens
        port.write(P.encode_drive(0.5, -0.25, 41))
        assert read_lines(port, 1) == [P.encode_ack(41)[:-1]]
        assert board.outputs == (0.5, -0.25)
        port.write(P.encode_neutral())
        assert wait_for(lambda: board.outputs == (0.0, 0.0), 1.0)
    cmds = board.commands
    assert [c.kind for c in cmds] == ["A", "N"] and cmds[0].seq == 41 and cmds[0].t <= cmds[1].t


def test_corrupt_bytes_are_rejected_by_the_board(board):
    with serial.Serial(board.port, 115200, timeout=0.05) as port:
        read_lines(port, 1)  # READY
        good = P.encode_drive(0.6, 0.6, 5)
        bad = bytearray(good)
        bad[3] ^= 0x04  # one flipped bit in the steering digits
        port.write(bytes(bad) + b"garbage*ZZ\n" + b"\x00\xff\xfe\n")
        port.write(P.encode_drive(0.1, 0.1, 6))
        assert read_lines(port, 1) == [P.encode_ack(6)[:-1]]  # only the valid line is acknowledged
    assert len(board.rejected) == 3
    assert [c.seq for c in board.drive_commands()] == [6] and board.outputs == (0.1, 0.1)


def test_watchdog_goes_neutral_and_says_failsafe(board):
    with serial.Serial(board.port, 115200, timeout=0.05) as port:
        read_lines(port, 1)
        assert not board.entered_failsafe  # not armed before the first command
        port.write(P.encode_drive(0.0, 0.8, 1))
        lines = read_lines(port, 2, timeout=2.0)  # ACK, then FAILSAFE after 100 ms of silence
        assert lines == [P.encode_ack(1)[:-1], P.encode_failsafe()[:-1]]
        assert board.outputs == (0.0, 0.0) and board.in_failsafe and board.entered_failsafe
        gap = board.failsafe_times[0] - board.commands[0].t
        assert gap >= board.watchdog_s  # never before the timeout (lower bound only: no timing upper bound)
        port.write(P.encode_drive(0.0, 0.2, 2))  # a valid command re-arms it
        assert wait_for(lambda: board.outputs == (0.0, 0.2) and not board.in_failsafe, 1.0)


def test_serial_actuator_counts_acks_and_rejects_corrupt_replies(board):
    events = []
    act = SerialActuator(board.port, wait_ready_s=1.0, on_event=lambda k, m: events.append(k))
    act.start()
    try:
        assert act.connected and act._ready.is_set()
        for i in range(20):
            assert act.send(0.01 * i, 0.3)
        assert wait_for(lambda: act.acked == 20, 2.0)
        st = act.stats()
        assert st["sent"] == 20 and st["acked"] == 20 and st["ack_latency_ms"]["n"] == 20
        # the live view (the page's status, several a second) covers only the newest acks
        newest = list(act.ack_latency_s)[-5:]
        live = act.stats(recent=5)["ack_latency_ms"]
        assert live["n"] == 5 and live["max"] == pytest.approx(max(newest) * 1e3)
        board.send_raw(b"ACK,3*00\n" + b"FAILSAF\xc5*2E\n")  # corrupt replies: rejected by the Pi side
        board.send_raw(P.encode_failsafe())
        assert wait_for(lambda: act.failsafe_count == 1 and act.rx_rejected == 2, 2.0)
        assert "arduino-failsafe" in events and act.acked == 20
    finally:
        act.stop()
    assert board.outputs == (0.0, 0.0) and board.commands[-1].kind == "N"  # neutral on exit


def test_serial_loss_and_reconnect(board):
    events = []
    act = SerialActuator(board.port, wait_ready_s=1.0, reconnect_s=0.05, on_event=lambda k, m: events.append(k))
    act.start()
    try:
        assert act.send(0.2, 0.4)
        board.unplug()  # the cable is pulled: writes fail, the board's watchdog trips
        assert wait_for(lambda: not act.send(0.2, 0.4), 2.0)
        assert not act.connected and "serial lost" in act.status and "serial-lost" in events
        assert wait_for(lambda: board.in_failsafe and board.outputs == (0.0, 0.0), 2.0)
        board.replug()
        assert wait_for(lambda: act.connected, 3.0)
        assert "serial-reconnected" in events and act.reconnects == 1
        assert act.send(0.1, 0.1)
        assert wait_for(lambda: board.outputs == (0.1, 0.1), 2.0)
    finally:
        act.stop()


def test_an_old_sketch_is_named_at_connect_not_driven():
    with SimArduino(realtime=False, protocol_version=None) as old_board:
        act = SerialActuator(old_board.port, wait_ready_s=1.0)
        with pytest.raises(ActuatorError, match="old rover_bridge sketch.*edgeact firmware flash"):
            act.start()
        assert not act.connected and act.sent == 0
        assert old_board.drive_commands() == []


def test_open_actuator_variants():
    sim_act = open_actuator("sim", watchdog_s=0.2)
    assert isinstance(sim_act, SerialActuator) and sim_act.sim is not None and sim_act.sim.watchdog_s == 0.2
    assert isinstance(open_actuator("none"), NullActuator)
    loop = open_actuator("loop://")
    loop.start()  # any pyserial URL works; a loopback echoes our own lines, which are rejected as replies
    try:
        assert loop.send(0.5, 0.5)
        assert wait_for(lambda: loop.rx_rejected >= 1, 2.0)
    finally:
        loop.stop()
    with pytest.raises(ActuatorError, match="cannot open serial port"):
        open_actuator("/dev/does-not-exist-edgeact", wait_ready_s=0).start()
