"""The schedule is checked with a fake clock: no assertions on real timings."""

import pytest

from edgeact.runtime.ratekeeper import Ratekeeper


class FakeClock:
    def __init__(self):
        self.t = 0.0
        self.sleeps = []

    def __call__(self):
        return self.t

    def sleep(self, dt):
        self.sleeps.append(dt)
        self.t += dt


def test_absolute_schedule_does_not_drift_with_work():
    clk = FakeClock()
    rk = Ratekeeper(100.0, clock=clk, sleep=clk.sleep)
    rk.start(0.0)
    starts = []
    for _ in range(50):
        tick = rk.wait()
        starts.append(tick.t)
        clk.t += 0.004  # 4 ms of work each tick
    assert starts[-1] == pytest.approx(0.49)  # tick k at k * 10 ms, not k * 14 ms
    assert rk.missed == 0


def test_a_late_tick_reports_lag_and_skips_whole_periods():
    clk = FakeClock()
    rk = Ratekeeper(100.0, clock=clk, sleep=clk.sleep)
    rk.start(0.0)
    rk.wait()
    clk.t = 0.0372  # stalled: slots at 10, 20 and 30 ms passed
    tick = rk.wait()
    assert tick.skipped == 2 and tick.deadline == pytest.approx(0.03) and tick.lag == pytest.approx(0.0072)
    assert tick.missed and rk.missed == 3  # two skipped slots + this tick more than half a period late
    nxt = rk.wait()
    assert nxt.t == pytest.approx(0.04) and nxt.index == 4  # back on the original phase


def test_slightly_late_tick_is_not_missed():
    clk = FakeClock()
    rk = Ratekeeper(50.0, clock=clk, sleep=clk.sleep)
    rk.start(0.0)
    rk.wait()
    clk.t = 0.025  # 5 ms late on a 20 ms period
    tick = rk.wait()
    assert not tick.missed and tick.lag == pytest.approx(0.005) and rk.missed == 0


def test_stop_request_cuts_the_wait_short():
    clk = FakeClock()
    rk = Ratekeeper(1.0, clock=clk, sleep=clk.sleep)
    rk.start(10.0)
    rk.wait(should_stop=lambda: True)
    assert clk.t == 0.0  # did not sleep the 10 s
