"""Fixtures for the runtime tests (the fakes live in runtime_fakes.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

try:
    import edgeact  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))


@pytest.fixture
def episode_dir(tmp_path: Path) -> Path:
    import cv2

    ep = tmp_path / "episode_000"
    (ep / "frames").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(12):
        img = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        cv2.imwrite(str(ep / "frames" / f"{i:06d}.jpg"), img)
    (ep / "meta.json").write_text(json.dumps({"fps": 30, "image_size": [48, 64]}))
    (ep / "data.csv").write_text("frame,timestamp,steering,throttle\n" +
                                 "".join(f"{i},{i / 30:.4f},0.0,0.0\n" for i in range(12)))
    return ep
