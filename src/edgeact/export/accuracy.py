"""Action error of a backend against the fp32 reference, in % of each action's range.

The figure the int8 acceptance uses: mean |int8 - fp32| / (action max - action min) per action
dimension, over every step of every chunk on held-out frames. The range is the training
data's (``action`` min/max stats); without those, 4 standard deviations stand in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

ACCEPT_PERCENT = 2.0


@dataclass
class ActionError:
    action_names: list[str]
    mean_pct: list[float]  # per action dim: mean |err| / range * 100, over all chunk steps
    first_step_pct: list[float]  # the same on the first step of each chunk (what runs first)
    max_pct: list[float]
    frames: int
    source: str
    range_source: str

    @property
    def worst_mean_pct(self) -> float:
        return max(self.mean_pct) if self.mean_pct else 0.0

    @property
    def passed(self) -> bool:
        return self.worst_mean_pct <= ACCEPT_PERCENT

    def to_json(self) -> dict:
        d = asdict(self)
        d["worst_mean_pct"] = self.worst_mean_pct
        d["accept_pct"] = ACCEPT_PERCENT
        d["passed"] = self.passed
        return d

    def format(self) -> str:
        parts = [
            f"{n} {m:.3f}% (first step {f:.3f}%, max {x:.2f}%)"
            for n, m, f, x in zip(self.action_names, self.mean_pct, self.first_step_pct, self.max_pct)
        ]
        verdict = "OK" if self.passed else "ABOVE"
        return (f"mean |err| / action range on {self.frames} {self.source}: " + "; ".join(parts)
                + f"  [{verdict} the {ACCEPT_PERCENT:g}% bound]")


def action_range(manifest_policy: dict) -> tuple[np.ndarray, str]:
    """(max - min) per action dim from the manifest's policy block, and where it came from."""
    rng = manifest_policy.get("action_range")
    if rng:
        span = np.asarray(rng["max"], np.float64) - np.asarray(rng["min"], np.float64)
        if np.all(span > 0):
            return span, "action min/max of the training data"
    std = manifest_policy.get("action_std")
    if std:
        return 4 * np.asarray(std, np.float64), "4 x action std (no min/max stats)"
    return np.full(int(manifest_policy["action_dim"]), 2.0), "assumed range 2 ([-1, 1]; no stats)"


def compare(
    reference: Callable[[list[np.ndarray], np.ndarray], np.ndarray],
    candidate: Callable[[list[np.ndarray], np.ndarray], np.ndarray],
    observations,
    manifest_policy: dict,
) -> ActionError:
    """Run both on every observation and measure the candidate's error against the reference."""
    span, span_source = action_range(manifest_policy)
    errors = []
    for frames, state in observations:
        got = np.asarray(candidate(frames, state), np.float64)
        errors.append(np.abs(got - np.asarray(reference(frames, state), np.float64)))
    return from_errors(np.stack(errors), span, manifest_policy, len(observations), observations.source, span_source)


def from_errors(err: np.ndarray, span: np.ndarray, manifest_policy: dict, frames: int, source: str,
                span_source: str) -> ActionError:
    """err: (N, chunk, action_dim) absolute errors."""
    pct = err / span.reshape(1, 1, -1) * 100.0
    names = list(manifest_policy.get("action_names") or [f"a{i}" for i in range(err.shape[-1])])
    return ActionError(
        action_names=names[: err.shape[-1]],
        mean_pct=[float(v) for v in pct.mean(axis=(0, 1))],
        first_step_pct=[float(v) for v in pct[:, 0].mean(axis=0)],
        max_pct=[float(v) for v in pct.max(axis=(0, 1))],
        frames=frames,
        source=source,
        range_source=span_source,
    )
