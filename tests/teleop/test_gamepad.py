"""The Pi's gamepad through a fake evdev device: the button map, the sticks, unplugging."""

from __future__ import annotations

import queue
import threading
from types import SimpleNamespace

import pytest

from edgeact.errors import ConfigError
from edgeact.teleop import gamepad as G
from edgeact.teleop.messages import Button, Control, SetMode, StepMaxThrottle
from polling import wait_for


class FakeDevice:
    """Follows evdev.InputDevice: read_loop() yields events with .type/.code/.value; absinfo(code)."""

    name = "Fake Pad"

    def __init__(self) -> None:
        self.events: queue.Queue = queue.Queue()
        self.closed = threading.Event()

    def push(self, type_: int, code: int, value: int) -> None:
        self.events.put(SimpleNamespace(type=type_, code=code, value=value))  # evdev.InputEvent's fields

    def unplug(self) -> None:
        self.events.put(OSError(19, "No such device"))

    def read_loop(self):
        while not self.closed.is_set():
            try:
                ev = self.events.get(timeout=0.05)
            except queue.Empty:
                continue
            if isinstance(ev, Exception):
                raise ev
            yield ev

    def absinfo(self, code: int):
        return SimpleNamespace(min=0, max=255)

    def close(self) -> None:
        self.closed.set()


@pytest.fixture
def pad():
    devices: list[FakeDevice] = []
    plugged = threading.Event()
    plugged.set()

    def open_device(path):
        if not plugged.is_set():
            raise OSError(2, f"No such file: {path}")
        devices.append(FakeDevice())
        return devices[-1]

    got: list = []
    lost: list = []
    gp = G.Gamepad("/dev/input/event7", lambda src, msg: got.append((src, msg)), lambda src, why: lost.append(why),
                   open_device=open_device, retry_s=0.05)
    gp.start()
    yield gp, devices, got, lost, plugged
    gp.stop()


def test_button_map_and_sticks(pad):
    gp, devices, got, _, _ = pad
    dev = devices[0]
    for code in (G.BTN_SOUTH, G.BTN_EAST, G.BTN_WEST, G.BTN_NORTH, G.BTN_SELECT, G.BTN_TR, G.BTN_TL):
        dev.push(G.EV_KEY, code, 1)  # press
        dev.push(G.EV_KEY, code, 0)  # release: ignored
    dev.push(G.EV_ABS, G.ABS_X, 255)  # full right
    dev.push(G.EV_ABS, G.ABS_RY, 0)  # stick up: forward
    dev.push(G.EV_ABS, G.ABS_X, 128)  # centred (within the dead zone)
    assert wait_for(lambda: len(got) == 10, 5.0)
    msgs = [m for _, m in got]
    assert msgs[:7] == [Button("record"), Button("estop_toggle"), SetMode("next"), Button("rerecord"),
                        Button("erase_last"), StepMaxThrottle(0.05), StepMaxThrottle(-0.05)]
    assert msgs[7] == Control(1.0, 0.0, True)
    assert msgs[8] == Control(1.0, 1.0, True)
    assert msgs[9] == Control(0.0, 1.0, True)
    assert {s for s, _ in got} == {"gamepad"}


def test_unplugging_reports_loss_and_it_comes_back(pad):
    gp, devices, got, lost, plugged = pad
    plugged.clear()
    devices[0].unplug()
    assert wait_for(lambda: lost and not gp.connected, 5.0)
    assert "gamepad lost" in lost[0]
    plugged.set()
    assert wait_for(lambda: gp.connected and len(devices) == 2, 5.0)
    devices[1].push(G.EV_KEY, G.BTN_SOUTH, 1)
    assert wait_for(lambda: got and got[-1][1] == Button("record"), 5.0)


def test_a_missing_device_fails_at_start_with_the_reason():
    def open_device(path):
        raise OSError(2, f"No such file or directory: {path!r}")

    with pytest.raises(ConfigError, match="event9.*input' group"):
        G.Gamepad("/dev/input/event9", lambda *a: None, lambda *a: None, open_device=open_device).start()
