"""The disk a recording takes: bytes per minute of ``edgeact drive --record``, measured or estimated.

Measured from the episodes already in the folder when there are some (the camera, the scene
and the JPEG quality are the user's own), else estimated from the frame size. The estimate's
bytes per pixel is what a photograph costs, not a simulator frame: measured with the
recorder's JPEG quality (90) at 360x640, a simulator frame takes 22-23 KB (0.10 byte per
pixel, ``edgeact drive --camera sim --record``), a photograph 59 KB (0.26), and a warning
that comes early costs less than a card that fills mid-episode.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

ESTIMATED_BYTES_PER_PIXEL = 0.26  # a 360x640 photograph as JPEG quality 90
BLOCK = 4096  # a file takes whole blocks (ext4, tmpfs)
ROW_BYTES = 64  # a data.csv row
MEASURED_EPISODES = 5  # the newest episodes a measurement reads


@dataclass(frozen=True)
class RecordingRate:
    bytes_per_minute: float
    basis: str  # how it was found, for a person


def recording_rate(fps: float, image_size: tuple[int, int] = (360, 640),
                   root: str | os.PathLike | None = None) -> RecordingRate:
    """Bytes per minute of recording at ``fps``: measured on the episodes in ``root`` if it holds
    some, else estimated for frames of ``image_size`` (H, W)."""
    measured = measured_bytes_per_step(root) if root is not None else None
    if measured is not None:
        per_step, episodes = measured
        return RecordingRate(per_step * fps * 60, f"measured on its {episodes} newest episode(s)")
    h, w = image_size
    per_step = _blocks(h * w * ESTIMATED_BYTES_PER_PIXEL) + ROW_BYTES
    return RecordingRate(per_step * fps * 60, f"estimated for {h}x{w} frames")


def measured_bytes_per_step(root: str | os.PathLike) -> tuple[float, int] | None:
    """(disk bytes per recorded step, episodes read) over the newest episodes under ``root``, or None."""
    folder = Path(root)
    if not folder.is_dir():
        return None
    episodes = sorted(p for p in folder.glob("episode_*") if (p / "frames").is_dir())[-MEASURED_EPISODES:]
    used = steps = 0
    for ep in episodes:
        for f in [*(ep / "frames").iterdir(), ep / "data.csv", ep / "meta.json"]:
            try:
                used += f.stat().st_blocks * 512
            except OSError:
                continue
            steps += f.suffix.lower() in (".jpg", ".jpeg", ".png")
    return (used / steps, len(episodes)) if steps else None


def free_bytes(path: str | os.PathLike) -> int:
    """Free bytes (for an unprivileged user) on the filesystem that holds ``path`` or, when it does
    not exist yet, its nearest existing parent."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


def _blocks(size: float) -> int:
    return int(-(-size // BLOCK) * BLOCK)
