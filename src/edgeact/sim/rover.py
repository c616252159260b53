"""Kinematic bicycle model of a small RC rover.

Commands are what the rover's Arduino receives: steering and throttle in [-1, 1];
steering > 0 turns left (counter-clockwise), throttle > 0 drives forward. Steering maps
linearly to the front-wheel angle (±``max_steer_deg``) through a first-order servo lag;
throttle maps to a longitudinal force (acceleration ``throttle * max_accel``)
against linear drag and rolling resistance, so a constant throttle settles at a speed of
about ``throttle * max_accel / drag`` (1.0 → 3 m/s by default): throttle ≈ speed / 3.

The pose (x, y, yaw) is the rover's centre, midway between the axles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgeact.errors import ConfigError


@dataclass(frozen=True)
class RoverParams:
    wheelbase_m: float = 0.26
    max_steer_deg: float = 25.0
    steer_time_constant_s: float = 0.05  # servo lag
    max_accel: float = 3.0  # m/s^2 at throttle 1 from standstill
    drag: float = 1.0  # 1/s: deceleration drag * v
    rolling: float = 0.05  # m/s^2 of rolling resistance when moving
    max_speed: float = 3.0  # m/s
    max_reverse_speed: float = 1.0  # m/s


@dataclass
class RoverState:
    x: float = 0.0
    y: float = 0.0
    yaw: float = 0.0
    speed: float = 0.0
    steer_angle: float = 0.0  # radians, actual front-wheel angle


class Rover:
    """State plus dynamics; ``step`` advances by ``dt`` seconds."""

    def __init__(self, params: RoverParams | None = None, state: RoverState | None = None) -> None:
        self.params = params or RoverParams()
        self.state = state or RoverState()

    def reset(self, x: float, y: float, yaw: float, speed: float = 0.0) -> None:
        self.state = RoverState(x=x, y=y, yaw=yaw, speed=speed, steer_angle=0.0)

    def step(self, steering: float, throttle: float, dt: float) -> None:
        if not dt > 0:
            raise ConfigError(f"dt must be > 0 seconds, got {dt}")
        steering = _clip_command(steering)
        throttle = _clip_command(throttle)
        p, st = self.params, self.state
        # integrate in sub-steps of at most 10 ms so big dt stays stable
        n = max(1, int(math.ceil(dt / 0.01)))
        h = dt / n
        target = math.radians(p.max_steer_deg) * steering
        alpha = 1.0 - math.exp(-h / p.steer_time_constant_s) if p.steer_time_constant_s > 0 else 1.0
        lr = p.wheelbase_m / 2
        for _ in range(n):
            st.steer_angle += alpha * (target - st.steer_angle)
            accel = throttle * p.max_accel - p.drag * st.speed
            if abs(st.speed) > 1e-3:
                accel -= math.copysign(p.rolling, st.speed)
            elif abs(throttle * p.max_accel) <= p.rolling:
                accel, st.speed = 0.0, 0.0
            v_new = min(max(st.speed + accel * h, -p.max_reverse_speed), p.max_speed)
            v = 0.5 * (st.speed + v_new)
            beta = math.atan(0.5 * math.tan(st.steer_angle))  # slip angle at the centre (lr = L/2)
            yaw_mid = st.yaw + 0.5 * h * v * math.sin(beta) / lr
            st.x += h * v * math.cos(yaw_mid + beta)
            st.y += h * v * math.sin(yaw_mid + beta)
            st.yaw = _wrap(st.yaw + h * v * math.sin(beta) / lr)
            st.speed = v_new


def _clip_command(value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        return 0.0  # a NaN command is treated as neutral, as the rover's safety layer does
    return min(max(value, -1.0), 1.0)


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi
