"""Rover episodes: the on-disk format, a torch Dataset for ACT training, statistics, LeRobot import.

``edgeact.data.episodes`` and ``edgeact.data.stats`` need only numpy and OpenCV;
``EpisodeDataset``/``split_episodes`` (torch) and ``import_lerobot`` (pyarrow) load on first use.
"""

from __future__ import annotations

from typing import Any

from edgeact.data.episodes import (
    Episode,
    EpisodeWriter,
    episode_dirs,
    load_episodes,
    read_episode,
    validate_frames,
    write_episode,
)
from edgeact.data.stats import compute_stats, summarize

_LAZY = {
    "EpisodeDataset": "edgeact.data.dataset",
    "ImageAugment": "edgeact.data.dataset",
    "split_episodes": "edgeact.data.dataset",
    "import_lerobot": "edgeact.data.lerobot_import",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgeact.data' has no attribute {name!r}")


__all__ = [
    "Episode",
    "EpisodeWriter",
    "episode_dirs",
    "load_episodes",
    "read_episode",
    "validate_frames",
    "write_episode",
    "compute_stats",
    "summarize",
    "EpisodeDataset",  # lazily, from _LAZY
    "ImageAugment",
    "split_episodes",
    "import_lerobot",
]
