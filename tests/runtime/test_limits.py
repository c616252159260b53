import pytest

from edgeact.errors import ConfigError
from edgeact.runtime.limits import ActionLimiter, Limits


def test_clamp_and_max_throttle():
    lim = ActionLimiter(Limits(max_throttle=0.4, steering_rate=None, throttle_rate=None))
    assert lim.apply(2.0, 0.9, 0.0) == (1.0, 0.4)
    assert lim.apply(-3.0, -0.9, 0.1) == (-1.0, -0.4)
    assert lim.apply(float("nan"), float("nan"), 0.2) == (0.0, 0.0)


def test_slew_rate_is_per_second():
    lim = ActionLimiter(Limits(steering_rate=2.0, throttle_rate=1.0))
    assert lim.apply(0.0, 0.0, 0.0) == (0.0, 0.0)
    s, th = lim.apply(1.0, 1.0, 0.1)  # 0.1 s: steering may move 0.2, throttle 0.1
    assert s == pytest.approx(0.2) and th == pytest.approx(0.1)
    s, th = lim.apply(1.0, 1.0, 0.2)
    assert s == pytest.approx(0.4) and th == pytest.approx(0.2)
    s, th = lim.apply(-1.0, 0.0, 0.25)
    assert s == pytest.approx(0.3) and th == pytest.approx(0.15)


def test_reset_jumps_to_neutral_ignoring_the_slew():
    lim = ActionLimiter(Limits(steering_rate=1.0, throttle_rate=1.0))
    lim.reset(0.0, 0.5, 0.5)
    lim.reset(0.01)  # neutral on a fault is immediate
    assert (lim.steering, lim.throttle) == (0.0, 0.0)
    assert lim.apply(1.0, 1.0, 0.11) == pytest.approx((0.1, 0.1))  # and driving resumes through the slew


def test_limits_validate():
    with pytest.raises(ConfigError):
        Limits(max_throttle=1.5)
    with pytest.raises(ConfigError):
        Limits(steering_rate=0.0)
