"""Output limits applied to every command before it is sent: clamp, max throttle, slew rate."""

from __future__ import annotations

from dataclasses import dataclass

from edgeact.errors import ConfigError


@dataclass(frozen=True)
class Limits:
    """``max_throttle``: |throttle| never exceeds it (forward and reverse).
    ``steering_rate`` / ``throttle_rate``: the most a command may change per second
    (None: no slew limit). Going neutral on a fault bypasses the slew limit (see
    :meth:`ActionLimiter.reset`).
    """

    max_throttle: float = 1.0
    steering_rate: float | None = 8.0  # full lock to lock (2.0) in 0.25 s
    throttle_rate: float | None = 4.0  # 0 → full in 0.25 s

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_throttle <= 1.0:
            raise ConfigError(f"max_throttle must be in [0, 1], got {self.max_throttle}")
        for name in ("steering_rate", "throttle_rate"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise ConfigError(f"{name} must be positive (units per second) or None, got {v}")


def _clamp(v: float, lo: float, hi: float) -> float:
    if v != v:  # NaN → neutral
        return 0.0
    return lo if v < lo else hi if v > hi else v


class ActionLimiter:
    """Stateful: remembers the last output and its time for the slew limit."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.steering = 0.0
        self.throttle = 0.0
        self._t: float | None = None

    def reset(self, t: float | None = None, steering: float = 0.0, throttle: float = 0.0) -> None:
        """Jump to (steering, throttle) now, ignoring the slew limit (used for neutral)."""
        self.steering, self.throttle, self._t = float(steering), float(throttle), t

    def apply(self, steering: float, throttle: float, t: float) -> tuple[float, float]:
        lim = self.limits
        s = _clamp(float(steering), -1.0, 1.0)
        th = _clamp(float(throttle), -lim.max_throttle, lim.max_throttle)
        if self._t is not None:
            dt = max(0.0, t - self._t)
            if lim.steering_rate is not None:
                d = lim.steering_rate * dt
                s = _clamp(s, self.steering - d, self.steering + d)
            if lim.throttle_rate is not None:
                d = lim.throttle_rate * dt
                th = _clamp(th, self.throttle - d, self.throttle + d)
        self.steering, self.throttle, self._t = s, th, t
        return s, th
