"""Observations for parity checks, calibration and accuracy reports.

Real frames come from rover episodes (``EPISODES/episode_*/frames/*.jpg`` + ``data.csv``),
read with :mod:`edgeact.data.episodes`. Frames are fitted to the model's input size as the
runtime fits camera frames (``fit_frame``: centre crop, resize); the state at step t is the
``state_*`` columns when present, else the previous command (steering, throttle), zeros at t=0.

Calibration and held-out frames never overlap: with two or more episodes the last ~20% of
episodes are held out; with one, alternate evenly spaced frames go to each side.
Without episodes, synthetic road-like frames stand in (``source`` says which).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeact.errors import DataError
from edgeact.frames import fit_frame


@dataclass
class Observations:
    """N observations: one (N, H, W, 3) uint8 RGB array per camera, (N, S) float32 states."""

    images: list[np.ndarray]
    states: np.ndarray
    source: str

    def __len__(self) -> int:
        return int(self.states.shape[0])

    def __iter__(self) -> Iterator[tuple[list[np.ndarray], np.ndarray]]:
        for i in range(len(self)):
            yield [cam[i] for cam in self.images], self.states[i]

    def subset(self, index) -> Observations:
        return Observations([cam[index] for cam in self.images], self.states[index], self.source)


# --------------------------------------------------------------------------------------
# synthetic
def synthetic_frames(n: int, image_size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """Road-like RGB frames: sky and ground gradients, a curved lane with edges, texture noise."""
    h, w = image_size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy /= max(h - 1, 1)
    xx /= max(w - 1, 1)
    frames = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        horizon = rng.uniform(0.25, 0.5)
        sky = np.stack([0.45 + 0.2 * yy, 0.6 + 0.2 * yy, 0.85 + 0.1 * yy], -1) * rng.uniform(0.7, 1.1)
        ground_color = rng.uniform(0.2, 0.5, 3)
        ground = ground_color * (0.7 + 0.5 * yy[..., None])
        depth = np.clip((yy - horizon) / (1 - horizon), 0, 1)
        centre = 0.5 + rng.uniform(-0.3, 0.3) * (1 - depth) ** 2 + rng.uniform(-0.15, 0.15)
        half_width = 0.03 + 0.35 * depth
        road = np.abs(xx - centre) < half_width
        edge = np.abs(np.abs(xx - centre) - half_width) < (0.004 + 0.01 * depth)
        img = np.where((yy < horizon)[..., None], sky, ground)
        asphalt = np.array([0.35, 0.35, 0.38]) * (0.8 + 0.4 * depth[..., None])
        img = np.where((road & (yy >= horizon))[..., None], asphalt, img)
        img = np.where((edge & (yy >= horizon))[..., None], np.array([0.95, 0.95, 0.9]), img)
        img = img + rng.normal(0, 0.03, img.shape)
        frames[i] = np.clip(img * 255, 0, 255).astype(np.uint8)
    return frames


def synthetic_states(n: int, state_dim: int, stats: dict | None = None, seed: int = 0) -> np.ndarray:
    """States spread over the training range (min..max from stats when known, else [-1, 1])."""
    rng = np.random.default_rng(seed + 1)
    lo, hi = -np.ones(state_dim, np.float32), np.ones(state_dim, np.float32)
    if stats and "min" in stats and "max" in stats:
        lo = np.asarray(stats["min"], np.float32).reshape(-1)[:state_dim]
        hi = np.asarray(stats["max"], np.float32).reshape(-1)[:state_dim]
    elif stats and "mean" in stats and "std" in stats:
        mean = np.asarray(stats["mean"], np.float32).reshape(-1)[:state_dim]
        std = np.asarray(stats["std"], np.float32).reshape(-1)[:state_dim]
        lo, hi = mean - 2 * std, mean + 2 * std
    return rng.uniform(lo, hi, (n, state_dim)).astype(np.float32)


def synthetic_observations(
    n: int, image_size: tuple[int, int], n_cameras: int, state_dim: int, state_stats: dict | None = None, seed: int = 0
) -> Observations:
    images = [synthetic_frames(n, image_size, seed + 100 * c) for c in range(n_cameras)]
    return Observations(images, synthetic_states(n, state_dim, state_stats, seed), "synthetic frames")


# --------------------------------------------------------------------------------------
# episodes
def read_episodes(root: str | Path) -> list:
    """Episodes under ``root`` (or ``root`` itself if it is one)."""
    from edgeact.data.episodes import load_episodes, read_episode

    root = Path(root)
    if not root.exists():
        raise DataError(f"episodes not found: {root}")
    return [read_episode(root)] if (root / "data.csv").is_file() else load_episodes(root)


def episode_observations(
    root: str | Path,
    n_calib: int,
    n_heldout: int,
    image_size: tuple[int, int],
    state_dim: int,
    n_cameras: int = 1,
) -> tuple[Observations, Observations]:
    """(calibration, held-out) observations drawn evenly from the episodes under ``root``."""
    if n_cameras != 1:
        raise DataError("episodes hold one front camera; a multi-camera model needs synthetic frames")
    episodes = read_episodes(root)
    lengths = [len(e) for e in episodes]
    if sum(lengths) < 2:
        raise DataError(f"{root}: need at least 2 frames, found {sum(lengths)}")
    if len(episodes) >= 2:
        n_held_eps = max(1, round(0.2 * len(episodes)))
        calib_pool = [(e, i) for e in episodes[:-n_held_eps] for i in range(len(e))]
        held_pool = [(e, i) for e in episodes[-n_held_eps:] for i in range(len(e))]
    else:
        pool = [(episodes[0], i) for i in range(lengths[0])]
        calib_pool, held_pool = pool[0::2], pool[1::2]
    name = f"frames from {len(episodes)} episode(s) in {root}"
    calib = _gather(calib_pool, n_calib, image_size, state_dim, name + " (calibration split)")
    held = _gather(held_pool, n_heldout, image_size, state_dim, name + " (held-out split)")
    return calib, held


def _gather(pool: list, n: int, image_size, state_dim: int, source: str) -> Observations:
    n = max(0, min(n, len(pool)))
    index = np.linspace(0, len(pool) - 1, n).round().astype(int) if n else np.zeros(0, int)
    frames = np.empty((n, *image_size, 3), np.uint8)
    states = np.zeros((n, state_dim), np.float32)
    for k, j in enumerate(index):
        episode, i = pool[j]
        frames[k] = fit_frame(np.asarray(episode.load_frame(i)), image_size)
        s = np.asarray(episode.states[i], np.float32).reshape(-1)
        if s.size < state_dim:
            raise DataError(
                f"episode state has {s.size} values but the model takes {state_dim}; "
                "add state_* columns to data.csv"
            )
        states[k] = s[:state_dim]
    return Observations([frames], states, source)


def observations_for(
    spec,
    frames: str | Path | None,
    n_calib: int,
    n_heldout: int,
    state_stats: dict | None = None,
    seed: int = 0,
) -> tuple[Observations, Observations]:
    """Calibration and held-out observations for a policy spec: from episodes, else synthetic."""
    n_cam = len(spec.camera_names)
    if frames is not None:
        return episode_observations(frames, n_calib, n_heldout, tuple(spec.image_size), spec.state_dim, n_cam)
    calib = synthetic_observations(n_calib, tuple(spec.image_size), n_cam, spec.state_dim, state_stats, seed)
    held = synthetic_observations(n_heldout, tuple(spec.image_size), n_cam, spec.state_dim, state_stats, seed + 7919)
    held.source = "synthetic frames (held-out seed)"
    return calib, held
