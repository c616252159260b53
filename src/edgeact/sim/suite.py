"""One policy on several tracks: does it generalize? A per-track table and one figure.

Each track is driven by :func:`edgeact.sim.evaluate.evaluate` in simulated time, from the
same start, with an appearance seed the training data did not contain when the coverage is
known. The table marks every track seen / other direction / unseen in training, and
summarizes laps, cross-track error and off-track events per group.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeact.fileio import atomic_save
from edgeact.sim.coverage import SEEN, TrainingCoverage
from edgeact.sim.evaluate import EvalResult, draw_run, evaluate
from edgeact.sim.track import make_track


@dataclass
class TrackRun:
    """One track's result and whether the policy trained on it."""

    track: str
    training: str  # seen, other direction, unseen, or "?" when the coverage is unknown
    seed: int
    result: EvalResult

    def to_json(self) -> dict[str, Any]:
        return {"track": self.track, "training": self.training, "seed": self.seed, **self.result.to_json()}


def evaluate_tracks(
    backend,
    tracks: list[str],
    *,
    seconds: float = 90.0,
    seed: int = 12345,
    coverage: TrainingCoverage | None = None,
    replan_every: int = 1,
    render_size: tuple[int, int] | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[TrackRun]:
    """Drive ``backend`` on each of ``tracks`` for ``seconds``; appearance seed ``seed`` (or the
    next one the training data did not hold)."""
    runs = []
    if coverage is not None:
        seed = coverage.unseen_seed(seed)
    for name in tracks:
        result = evaluate(backend, track=name, seconds=seconds, seed=seed, replan_every=replan_every,
                          render_size=render_size)
        run = TrackRun(name, coverage.status(name) if coverage else "?", seed, result)
        runs.append(run)
        if progress:
            progress(f"{name:<12} {run.training:<15} laps {result.laps:5.2f}  mean |xte| "
                     f"{result.mean_cross_track_m:.3f} m  max {result.max_cross_track_m:.3f} m  off-track "
                     f"{result.off_track_events}")
    return runs


def summary_rows(runs: list[TrackRun]) -> list[dict[str, Any]]:
    """Per-group (seen in training / not / all) totals: laps min and mean, cross-track mean and max, off-track sum."""
    groups = {"seen in training": [r for r in runs if r.training == SEEN],
              "not seen (other direction or unseen)": [r for r in runs if r.training not in (SEEN, "?")],
              "all tracks": runs}
    rows = []
    for name, group in groups.items():
        if not group:
            continue
        res = [r.result for r in group]
        rows.append({"group": name, "tracks": len(group), "laps_min": min(r.laps for r in res),
                     "laps_mean": float(np.mean([r.laps for r in res])),
                     "cross_track_mean_m": float(np.mean([r.mean_cross_track_m for r in res])),
                     "cross_track_max_m": max(r.max_cross_track_m for r in res),
                     "off_track_events": sum(r.off_track_events for r in res)})
    return rows


def format_table(runs: list[TrackRun]) -> str:
    """A Markdown table: one row per track, then the group summaries."""
    lines = ["| track | in training | laps | mean \\|xte\\| (m) | max \\|xte\\| (m) | off-track | speed (m/s) |",
             "|---|---|---|---|---|---|---|"]
    for r in runs:
        e = r.result
        lines.append(f"| {r.track} | {r.training} | {e.laps:.2f} | {e.mean_cross_track_m:.3f} | "
                     f"{e.max_cross_track_m:.3f} | {e.off_track_events} | {e.mean_speed_mps:.2f} |")
    lines += ["", "| group | tracks | laps min / mean | mean \\|xte\\| (m) | max \\|xte\\| (m) | off-track |",
              "|---|---|---|---|---|---|"]
    for row in summary_rows(runs):
        lines.append(f"| {row['group']} | {row['tracks']} | {row['laps_min']:.2f} / {row['laps_mean']:.2f} | "
                     f"{row['cross_track_mean_m']:.3f} | {row['cross_track_max_m']:.3f} | {row['off_track_events']} |")
    return "\n".join(lines)


def plot_runs(runs: list[TrackRun], path: str | os.PathLike, title: str = "") -> Path:
    """One PNG with every track's road and driven path (coloured by time, off-track in red)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(4, len(runs))
    rows = (len(runs) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), constrained_layout=True, squeeze=False)
    for ax, run in zip(axes.flat, runs):
        draw_run(ax, make_track(run.track), run.result)
        colour = "black" if run.result.off_track_events == 0 else "tab:red"
        ax.set_title(f"{run.track} ({run.training}): {run.result.laps:.2f} laps, off-track "
                     f"{run.result.off_track_events}", fontsize=9, color=colour)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(runs):]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=11)
    path = Path(path)
    atomic_save(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    plt.close(fig)
    return path

