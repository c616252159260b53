"""The pilot as the runtime's action source: the policy's inference runs as usual, the pilot decides each tick.

The runtime asks its :class:`~edgeact.runtime.inference.ActionSource` for the action for
now; :class:`PilotSource` wraps the policy's source (so inference, its counters and its
faults are the runtime's own) and returns the pilot's decision instead. It can replace the
command or hold neutral, never bypass safety: when the command follows the policy a stale
chunk stays a fault; when a person drives, the policy's chunk does not matter.
"""

from __future__ import annotations

import numpy as np

from edgeact.runtime.inference import ActionSource, TickAction
from edgeact.teleop.pilot import Pilot


class PilotSource:
    """An ActionSource: ``inner`` (the policy's inference) runs; ``pilot.decide`` picks each tick's command."""

    def __init__(self, inner: ActionSource, pilot: Pilot, steer_i: int, throttle_i: int, action_dim: int) -> None:
        self.inner = inner
        self.pilot = pilot
        self._steer_i, self._throttle_i, self._action_dim = steer_i, throttle_i, action_dim

    # the inference counters the runtime's safety checks and report read: the policy's own (read-only)
    @property
    def chunks(self) -> int:
        return self.inner.chunks

    @property
    def errors(self) -> int:
        return self.inner.errors

    @property
    def consecutive_errors(self) -> int:
        return self.inner.consecutive_errors

    @property
    def last_error(self) -> str | None:
        return self.inner.last_error

    def start(self, t_start: float) -> None:
        self.inner.start(t_start)

    def stop(self) -> None:
        self.inner.stop()

    def action(self, now: float) -> TickAction:
        pick = self.inner.action(now)
        policy = None if pick.action is None else (float(pick.action[self._steer_i]),
                                                   float(pick.action[self._throttle_i]))
        decision = self.pilot.decide(pick.t, policy)
        if decision.uses_policy and pick.action is None:
            return pick  # the policy's stale chunk stays a fault
        if decision.command is None:
            return TickAction(pick.t, None, decision.hold or "held neutral by the pilot", None, pick.age_s, pick.step)
        action = np.zeros(self._action_dim, dtype=np.float64)
        action[self._steer_i], action[self._throttle_i] = decision.command
        return TickAction(pick.t, action, "", None, pick.age_s, pick.step)
