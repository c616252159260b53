"""The one hook through which something other than the policy decides a tick's command.

``edgeact run`` sends the policy's action. ``edgeact drive`` plugs a pilot in here: each
control tick it gets the policy's (steering, throttle) for now, if there is one, and returns
what to send instead (a person's command, the policy's steering with a person's throttle,
…) or asks for neutral. Safety, limits and the actuator stay the runtime's: a pilot can
only replace the command or hold neutral, never bypass a fault.

The runtime calls both methods from the control thread every tick: they must return in
microseconds (no I/O, no waiting on locks held for long).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Decision:
    """What a command source wants for one tick.

    ``command``: (steering, throttle) to send, or None to hold neutral (``hold`` says why).
    ``uses_policy``: True when the command follows the policy, so a stale or missing chunk
    is a fault as in ``edgeact run``; False when a person drives and the policy's state
    does not matter.
    """

    command: tuple[float, float] | None
    uses_policy: bool
    hold: str = ""
    intervention: bool = False


class CommandSource(Protocol):
    def decide(self, now: float, policy: tuple[float, float] | None) -> Decision:
        """The command for the tick at ``now``; ``policy``: the policy's action for now, None when stale."""
        ...

    def executed(self, now: float, steering: float, throttle: float, neutral: bool, why: str) -> None:
        """What the tick actually sent (after safety and limits)."""
        ...
