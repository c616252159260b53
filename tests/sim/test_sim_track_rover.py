from __future__ import annotations

import math

import pytest

from edgeact.errors import ConfigError
from edgeact.sim.rover import Rover
from edgeact.sim.track import LapCounter, make_track, track_names


def test_tracks_are_closed_smooth_and_drivable():
    assert {"oval", "winding"} <= set(track_names())
    for name in track_names():
        t = make_track(name)
        assert t.length > 20
        # tightest bend wider than the rover's minimum turning radius (~0.57 m); hairpin's is 0.8 m
        assert t.min_radius > 0.75
        x0, y0, _ = t.point_at(0.0)
        x1, y1, _ = t.point_at(t.length)
        assert math.hypot(x1 - x0, y1 - y0) < 1e-9
    with pytest.raises(ConfigError, match="oval"):
        make_track("monza")


def test_projection_signs_and_progress():
    t = make_track("oval")  # bottom straight at y = -3 driven towards +x
    p = t.project(0.5, -2.8)
    assert p.cross_track == pytest.approx(0.2, abs=1e-6)  # left of the driving direction is +
    assert t.project(0.5, -3.3).cross_track == pytest.approx(-0.3, abs=1e-6)
    assert p.heading == pytest.approx(0.0, abs=1e-6)
    x, y, h = t.point_at(p.s)
    assert (x, y) == pytest.approx((0.5, -3.0), abs=1e-6)
    # the hinted (local) search agrees with the global one
    q = t.project(0.7, -2.9, hint=p.index)
    assert q.s == pytest.approx(t.project(0.7, -2.9).s)


def test_lap_counter_counts_forward_and_backward():
    t = make_track("oval")
    lc = LapCounter(t, start_s=1.0)
    for k in range(1, 2 * 40 + 1):  # two laps forward in steps of L/40
        lc.update((1.0 + k * t.length / 40) % t.length)
    assert lc.laps == pytest.approx(2.0)
    for k in range(1, 21):  # half a lap backwards
        lc.update((1.0 - k * t.length / 40) % t.length)
    assert lc.laps == pytest.approx(1.5)


def test_rover_kinematics():
    r = Rover()
    r.reset(0.0, 0.0, 0.0)
    for _ in range(300):
        r.step(0.0, 0.5, 1 / 30)
    assert r.state.speed == pytest.approx(1.5 - 0.05, abs=0.05)  # throttle ~ speed / 3
    assert abs(r.state.y) < 1e-9 and r.state.x > 10
    r.reset(0.0, 0.0, 0.0, speed=1.0)
    for _ in range(10):
        r.step(1.0, 0.35, 1 / 30)
    assert r.state.yaw > 0.3 and r.state.y > 0  # steering > 0 turns left
    r.reset(0.0, 0.0, 0.0, speed=1.0)
    r.step(float("nan"), 5.0, 0.1)  # NaN is neutral, commands clamp to [-1, 1]
    assert r.state.yaw == 0.0 and r.state.speed <= 3.0
