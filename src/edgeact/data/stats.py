"""Dataset statistics as LeRobot computes them, and the summary behind ``edgeact data stats``.

``compute_stats`` returns ``{feature key: {"mean"|"std"|"min"|"max": float32 array}}``:
state and action per dimension over every frame (std is the population std, as
``np.std``); images per channel over sampled frames, pixel values in [0, 1], each array
shaped (3, 1, 1) as LeRobot stores them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeact.data.episodes import ACTION_NAMES, Episode, load_episodes
from edgeact.errors import DataError

CAMERA_KEY = "observation.images.cam_front"
STATE_KEY = "observation.state"
ACTION_KEY = "action"

Stats = dict[str, dict[str, np.ndarray]]


def _vector_stats(x: np.ndarray) -> dict[str, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    return {
        "mean": x.mean(axis=0).astype(np.float32),
        "std": x.std(axis=0).astype(np.float32),
        "min": x.min(axis=0).astype(np.float32),
        "max": x.max(axis=0).astype(np.float32),
    }


def _downsample(img: np.ndarray, target: int = 150) -> np.ndarray:
    """Shrink so the longer side is about ``target`` px (LeRobot samples stats on ~150 px images)."""
    h, w = img.shape[:2]
    factor = max(h, w) // target
    if factor <= 1:
        return img
    return cv2.resize(img, (w // factor, h // factor), interpolation=cv2.INTER_AREA)


def sample_frame_indices(episodes: Sequence[Episode], max_frames: int) -> list[tuple[int, int]]:
    """(episode, frame) pairs spread evenly over every episode, at most ``max_frames`` in all."""
    total = sum(len(e) for e in episodes)
    if total <= max_frames:
        return [(i, t) for i, e in enumerate(episodes) for t in range(len(e))]
    out = []
    for i, e in enumerate(episodes):
        k = max(1, int(round(max_frames * len(e) / total)))
        out += [(i, int(t)) for t in np.linspace(0, len(e) - 1, k).round().astype(int)]
    return out


def image_stats(episodes: Sequence[Episode], max_frames: int = 500) -> dict[str, np.ndarray]:
    """Per-channel mean/std/min/max of [0, 1] pixels over sampled frames, each shaped (3, 1, 1)."""
    n = 0
    s = np.zeros(3)
    s2 = np.zeros(3)
    lo = np.full(3, np.inf)
    hi = np.full(3, -np.inf)
    for ei, t in sample_frame_indices(episodes, max_frames):
        px = _downsample(episodes[ei].load_frame(t)).reshape(-1, 3).astype(np.float64) / 255.0
        n += len(px)
        s += px.sum(axis=0)
        s2 += (px**2).sum(axis=0)
        lo = np.minimum(lo, px.min(axis=0))
        hi = np.maximum(hi, px.max(axis=0))
    mean = s / n
    std = np.sqrt(np.maximum(s2 / n - mean**2, 0.0))
    named = (("mean", mean), ("std", std), ("min", lo), ("max", hi))
    return {k: v.reshape(3, 1, 1).astype(np.float32) for k, v in named}


def compute_stats(
    episodes: Sequence[Episode] | str | os.PathLike,
    *,
    image_samples: int = 500,
    camera_key: str = CAMERA_KEY,
) -> Stats:
    """Normalization statistics for ``observation.state``, ``action`` and the camera."""
    if isinstance(episodes, (str, os.PathLike)):
        episodes = load_episodes(episodes)
    if not episodes:
        raise DataError("no episodes to compute statistics over")
    states = np.concatenate([e.states for e in episodes])
    actions = np.concatenate([e.actions for e in episodes])
    return {
        STATE_KEY: _vector_stats(states),
        ACTION_KEY: _vector_stats(actions),
        camera_key: image_stats(episodes, image_samples),
    }


# ---------------------------------------------------------------------- summary
def summarize(root: str | os.PathLike | Sequence[Episode]) -> dict[str, Any]:
    """What ``edgeact data stats`` prints, as a dict (JSON-friendly)."""
    episodes = load_episodes(root) if isinstance(root, (str, os.PathLike)) else list(root)
    actions = np.concatenate([e.actions for e in episodes])
    lengths = [len(e) for e in episodes]
    fps = episodes[0].fps
    per_action = {}
    for i, name in enumerate(ACTION_NAMES):
        a = actions[:, i].astype(np.float64)
        per_action[name] = {"min": float(a.min()), "mean": float(a.mean()), "max": float(a.max()),
                            "std": float(a.std())}
    return {
        "root": str(root) if isinstance(root, (str, os.PathLike)) else None,
        "episodes": len(episodes),
        "frames": int(sum(lengths)),
        "fps": fps,
        "image_size": list(episodes[0].image_size),
        "duration_s": float(sum(lengths) / fps),
        "episode_frames": {"min": int(min(lengths)), "max": int(max(lengths)), "mean": float(np.mean(lengths))},
        "state_from_columns": bool(episodes[0].state_from_columns),
        "state_names": list(episodes[0].state_names),
        "actions": per_action,
    }


def format_summary(summary: dict[str, Any]) -> str:
    h, w = summary["image_size"]
    ef = summary["episode_frames"]
    lines = [
        f"episodes     {summary['episodes']}",
        f"frames       {summary['frames']}  (per episode {ef['min']}–{ef['max']}, mean {ef['mean']:.0f})",
        f"fps          {summary['fps']:g}",
        f"image size   {h}x{w} (HxW)",
        f"duration     {summary['duration_s']:.1f} s ({summary['duration_s'] / 60:.1f} min)",
        "state        "
        + (
            "state_* columns: " + ", ".join(summary["state_names"])
            if summary["state_from_columns"]
            else "previous command (steering, throttle)"
        ),
        "",
        f"{'action':<10}{'min':>9}{'mean':>9}{'max':>9}{'std':>9}",
    ]
    for name, s in summary["actions"].items():
        lines.append(f"{name:<10}{s['min']:>9.3f}{s['mean']:>9.3f}{s['max']:>9.3f}{s['std']:>9.3f}")
    return "\n".join(lines)


def plot_action_histogram(episodes: Sequence[Episode], path: str | os.PathLike, bins: int = 41) -> Path:
    """Histogram of steering and throttle over every frame, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgeact.fileio import atomic_save

    actions = np.concatenate([e.actions for e in episodes])
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), constrained_layout=True)
    for i, (ax, name) in enumerate(zip(axes, ACTION_NAMES)):
        ax.hist(actions[:, i], bins=np.linspace(-1, 1, bins), color=("tab:blue", "tab:orange")[i])
        ax.set_title(f"{name} ({len(actions)} frames)")
        ax.set_xlim(-1, 1)
        ax.set_xlabel("command")
    axes[0].set_ylabel("frames")
    path = Path(path)
    atomic_save(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return path
