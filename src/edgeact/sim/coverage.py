"""What a policy saw in training (tracks, appearance seeds), and which evaluations are held out.

Simulator episodes name their track and appearance seed in meta.json; training copies the
set of both into the checkpoint's ``edgeact.json`` (``training_data``), which export copies
into the bundle. A track counts as seen when either of its directions was in the data: the
other direction of a seen road is a mirror image of it, not a new road.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from edgeact.errors import ConfigError
from edgeact.sim.track import REVERSE_SUFFIX, track_names

SEEN, OTHER_DIRECTION, UNSEEN = "seen", "other direction", "unseen"


def road(track: str) -> str:
    """The road a track name drives, without its direction."""
    return track[: -len(REVERSE_SUFFIX)] if track.endswith(REVERSE_SUFFIX) else track


@dataclass(frozen=True)
class TrainingCoverage:
    """Tracks and appearance seeds of a policy's training episodes."""

    tracks: tuple[str, ...]
    appearance_seeds: frozenset[int]
    source: str  # the file it was read from, for messages

    def status(self, track: str) -> str:
        """``seen`` (this direction trained), ``other direction`` (the road, driven the other way) or ``unseen``."""
        if track in self.tracks:
            return SEEN
        if road(track) in {road(t) for t in self.tracks}:
            return OTHER_DIRECTION
        return UNSEEN

    def held_out(self, tracks: list[str] | None) -> list[str]:
        """Tracks on neither direction of which the policy trained; every such track when ``tracks`` is None.

        Raises ConfigError when a requested track was seen: calling it held out would be false.
        """
        if tracks is None:
            held = [t for t in track_names(directions=True) if self.status(t) == UNSEEN]
            if not held:
                raise ConfigError(f"the policy trained on every built-in track ({self.source}); nothing is held out")
            return held
        seen = [t for t in tracks if self.status(t) != UNSEEN]
        if seen:
            raise ConfigError(
                f"{', '.join(seen)} {'is' if len(seen) == 1 else 'are'} not held out: the training data "
                f"({self.source}) holds {', '.join(self.tracks)}. Drop --holdout to evaluate seen tracks, or choose "
                f"from the unseen ones: {', '.join(self.held_out(None))}"
            )
        return list(tracks)

    def unseen_seed(self, seed: int) -> int:
        """``seed``, or the next integer after it that is no training episode's appearance seed."""
        while seed in self.appearance_seeds:
            seed += 1
        return seed


def coverage_of_episodes(folder: str | os.PathLike) -> TrainingCoverage:
    """Coverage read from the meta.json of every episode in ``folder``."""
    from edgeact.data.episodes import load_episodes

    episodes = load_episodes(folder)
    tracks = sorted({str(e.meta["track"]) for e in episodes if "track" in e.meta})
    if not tracks:
        raise ConfigError(f"the episodes in {folder} do not say which track they drive (not simulator episodes?)")
    seeds = frozenset(int(e.meta["appearance_seed"]) for e in episodes if "appearance_seed" in e.meta)
    return TrainingCoverage(tuple(tracks), seeds, str(folder))


def coverage_of_model(model: str | os.PathLike) -> TrainingCoverage:
    """Coverage a training run wrote beside its checkpoint (``edgeact.json``: ``training_data``)."""
    model = Path(model)
    candidates = [model] if model.is_file() else [model / "edgeact.json", model / "best" / "edgeact.json",
                                                  model / "last" / "edgeact.json"]
    for meta_file in candidates:
        if meta_file.is_file() and meta_file.name == "edgeact.json":
            data = json.loads(meta_file.read_text()).get("training_data") or {}
            if data.get("tracks"):
                return TrainingCoverage(tuple(data["tracks"]), frozenset(int(s) for s in data.get("appearance_seeds",
                                                                                                   [])), str(meta_file))
    raise ConfigError(
        f"{model} does not say which tracks it was trained on (no training_data in edgeact.json: trained before "
        "edgeact recorded it, or elsewhere); give the training episodes with --data DIR"
    )
