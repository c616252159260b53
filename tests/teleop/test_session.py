"""DriveSession.apply: every input message acts on the rover's state (no threads started)."""

from __future__ import annotations

from teleop_fakes import CountingCamera, quiet_runtime

from edgeact.runtime import open_actuator
from edgeact.teleop.messages import Button, Control, SetMaxThrottle, SetMode, StepMaxThrottle
from edgeact.teleop.no_policy import NoPolicy
from edgeact.teleop.session import DriveConfig, DriveSession


def session(**kw) -> DriveSession:
    cfg = DriveConfig(runtime=quiet_runtime(max_throttle=0.6), **kw)
    return DriveSession(NoPolicy((24, 32)), CountingCamera(), open_actuator("none"), cfg, has_policy=False)


def test_buttons_and_settings():
    s = session()
    assert s.pilot.max_throttle == 0.5  # the slider starts at 0.5, under the --max-throttle cap
    assert s.apply("gamepad", StepMaxThrottle(0.05)) is None and s.pilot.max_throttle == 0.55
    s.apply("gamepad", StepMaxThrottle(0.05))
    s.apply("gamepad", StepMaxThrottle(0.05))
    assert s.pilot.max_throttle == 0.6  # never above --max-throttle
    s.apply("page 1", SetMaxThrottle(1.0))
    assert s.pilot.max_throttle == 0.6
    assert s.pilot.controller == "page 1"  # a button press is a person acting
    s.apply("page 2", Button("estop_toggle"))
    assert s.runtime.estop.triggered and s.pilot.controller == "page 2"
    s.apply("page 1", Button("estop"))  # pressing STOP again on another page keeps it stopped
    assert s.runtime.estop.triggered
    s.apply("page 1", Button("estop_toggle"))
    assert not s.runtime.estop.triggered
    assert "needs a policy" in s.apply("page 1", SetMode("auto"))
    assert "--record DIR" in s.apply("page 1", Button("record"))
    s.apply("page 1", Control(0.2, 0.3, True))
    assert s.pilot.controller == "page 1"


def test_status_is_plain_json():
    import json

    s = session()
    st = s.status()
    json.dumps(st)  # what every page receives
    assert st["mode"] == "user" and st["modes"] == ["user"] and st["chunk"] is None
    assert st["estop"] is False and st["record_available"] is False and st["neutral"] is True
