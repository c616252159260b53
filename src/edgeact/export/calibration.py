"""Observations for parity checks, calibration and accuracy reports.

Real frames come from rover episodes (``EPISODES/episode_*/frames/*.jpg`` + ``data.csv``),
read with :mod:`edgeact.data.episodes` when that module is installed, else with the small
reader here. Frames are resized to the model's input size; the state at step t is the
``state_*`` columns when present, else the previous command (steering, throttle), zeros at t=0.

Calibration and held-out frames never overlap: with two or more episodes the last ~20% of
episodes are held out; with one, alternate evenly spaced frames go to each side.
Without episodes, synthetic road-like frames stand in (``source`` says which).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from edgeact.errors import DataError


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
        img = np.where((road & (yy >= horizon))[..., None], np.array([0.35, 0.35, 0.38]) * (0.8 + 0.4 * depth[..., None]), img)
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
@dataclass
class _LocalEpisode:
    """Minimal episode: frame paths, commands and states (what calibration needs)."""

    path: Path
    frame_files: list[Path]
    states: np.ndarray
    actions: np.ndarray

    def load_frame(self, i: int) -> np.ndarray:
        import cv2

        image = cv2.imread(str(self.frame_files[i]), cv2.IMREAD_COLOR)
        if image is None:
            raise DataError(f"cannot read frame {self.frame_files[i]}")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def __len__(self) -> int:
        return len(self.frame_files)


def _read_local_episode(folder: Path) -> _LocalEpisode:
    csv_path = folder / "data.csv"
    if not csv_path.is_file():
        raise DataError(f"{folder} has no data.csv")
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise DataError(f"{csv_path} has no rows")
    columns = list(rows[0])
    for needed in ("frame", "steering", "throttle"):
        if needed not in columns:
            raise DataError(f"{csv_path} lacks the {needed!r} column (has {columns})")
    frames_dir = folder / "frames"
    files, actions = [], []
    for row in rows:
        frame = str(row["frame"]).strip()
        name = frame if frame.endswith((".jpg", ".png")) else f"{int(float(frame)):06d}.jpg"
        files.append(frames_dir / name)
        actions.append([float(row["steering"]), float(row["throttle"])])
    actions_arr = np.asarray(actions, np.float32)
    state_cols = [c for c in columns if c.startswith("state_")]
    if state_cols:
        states = np.asarray([[float(row[c]) for c in state_cols] for row in rows], np.float32)
    else:  # the state at t is the command sent at t-1
        states = np.concatenate([np.zeros((1, 2), np.float32), actions_arr[:-1]], 0)
    return _LocalEpisode(folder, files, states, actions_arr)


def read_episodes(root: str | Path) -> list:
    """Episodes under ``root`` (or ``root`` itself if it is one), via edgeact.data.episodes when present."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"episodes not found: {root}")
    try:
        import importlib

        episodes_module = importlib.import_module("edgeact.data.episodes")  # optional here
    except ImportError:
        episodes_module = None
    if episodes_module is not None and hasattr(episodes_module, "read_episode"):
        found = [root] if (root / "data.csv").is_file() else list(episodes_module.list_episodes(root))
        if found:
            return [e if hasattr(e, "load_frame") else episodes_module.read_episode(e) for e in found]
    dirs = [root] if (root / "data.csv").is_file() else sorted(p for p in root.glob("episode_*") if p.is_dir())
    if not dirs:
        raise DataError(f"no episodes in {root}: expected episode_*/frames/*.jpg and data.csv")
    return [_read_local_episode(d) for d in dirs]


def _fit(frame: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    h, w = image_size
    if frame.shape[:2] == (h, w):
        return np.ascontiguousarray(frame, dtype=np.uint8)
    import cv2

    return cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA).astype(np.uint8)


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
        frames[k] = _fit(np.asarray(episode.load_frame(i)), image_size)
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
