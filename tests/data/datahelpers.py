"""Synthetic episode content shared by the data tests."""

from __future__ import annotations

import numpy as np


def smooth_frame(i: int, size=(24, 32)) -> np.ndarray:
    """A smooth image that JPEG keeps close, distinct per i."""
    h, w = size
    y, x = np.mgrid[0:h, 0:w]
    r = (x * 255 // max(w - 1, 1)).astype(np.uint8)
    g = (y * 255 // max(h - 1, 1)).astype(np.uint8)
    b = np.full((h, w), (i * 37) % 256, np.uint8)
    return np.stack([r, g, b], axis=-1)


def make_actions(n: int, offset: float = 0.0) -> np.ndarray:
    t = np.arange(n, dtype=np.float64)
    return np.stack([np.clip(0.5 * np.sin(0.3 * t) + offset, -1, 1), np.linspace(0.1, 0.6, n)], axis=1)


def synthetic_writer(tmp_path):
    """``write(name, n, size, root, offset, **kw) -> (path, actions)``: a tiny episode written
    with the real writer under ``tmp_path / "episodes"``."""
    from edgeact.data.episodes import write_episode

    def write(name: str = "episode_000", n: int = 8, size=(24, 32), root=None, offset=0.0, **kw):
        root = root or tmp_path / "episodes"
        actions = make_actions(n, offset)
        path = write_episode(root / name, (smooth_frame(i, size) for i in range(n)), actions, fps=30, **kw)
        return path, actions

    return write
