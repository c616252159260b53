"""Fixed-rate loop timing on an absolute schedule, after openpilot's ``Ratekeeper``.

Deadlines are ``t0 + k * period``: the next deadline is the previous one plus the period,
never "now plus the period", so the rate does not drift with the work done in each tick.
A tick that wakes late reports its lag. If a tick is so late that whole periods passed,
those slots are skipped (not run back to back) and counted as missed, keeping the phase.

Missed deadline: a tick that started more than half a period after its deadline (its
command went out nearer the next slot than its own), plus every skipped slot.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from edgeact.errors import ConfigError


@dataclass(frozen=True)
class Tick:
    index: int  # slot number since start (skipped slots advance it)
    deadline: float  # when this tick should have started
    t: float  # when it did start
    lag: float  # t - deadline (>= 0 except for clock granularity)
    period: float  # t - previous tick's t (nan for the first)
    skipped: int  # slots skipped just before this tick
    missed: bool  # this tick is a missed deadline (late by more than half a period, or skipped slots)


class Ratekeeper:
    def __init__(
        self,
        rate_hz: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate_hz > 0:
            raise ConfigError(f"rate must be positive, got {rate_hz}")
        self.rate_hz = float(rate_hz)
        self.period = 1.0 / self.rate_hz
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None
        self._index = -1
        self._last_t: float | None = None
        self.ticks = 0
        self.missed = 0
        self.skipped = 0

    def start(self, t0: float | None = None) -> None:
        """First deadline at ``t0`` (default: now)."""
        self._next = self._clock() if t0 is None else t0
        self._index = -1
        self._last_t = None

    @property
    def next_deadline(self) -> float:
        if self._next is None:
            self.start()
        return self._next  # type: ignore[return-value]

    def wait(self, should_stop: Callable[[], bool] | None = None) -> Tick:
        """Sleep until the next deadline and return the tick's timing.

        ``should_stop``: checked between sleeps of at most 50 ms, so a stop request is not
        held up by a slow rate.
        """
        deadline = self.next_deadline
        while True:
            remaining = deadline - self._clock()
            if remaining <= 0:
                break
            if should_stop is not None and should_stop():
                break
            self._sleep(min(remaining, 0.05))
        t = self._clock()
        lag = t - deadline
        skipped = 0
        if lag >= self.period:
            skipped = int(math.floor(lag / self.period))
            deadline += skipped * self.period
            lag = t - deadline
        index = self._index + 1 + skipped
        missed = skipped > 0 or lag > 0.5 * self.period
        self._index = index
        self._next = deadline + self.period
        period = t - self._last_t if self._last_t is not None else float("nan")
        self._last_t = t
        self.ticks += 1
        self.skipped += skipped
        self.missed += skipped + (1 if lag > 0.5 * self.period else 0)
        return Tick(index, deadline, t, lag, period, skipped, missed)
