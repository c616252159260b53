"""Every frame of some episodes decoded once, at one size, in one memory-mapped file.

Training reads each frame hundreds of times (an epoch per few hundred steps); decoding the
JPEG and resizing it each time is most of what the per-sample loader costs (``edgeact bench
--loader``). The cache holds the frames as the model takes them, (N, H, W, 3) uint8 RGB
through :meth:`Episode.fitted_frame`, in a ``.npy`` file that every process maps: the operating
system's page cache holds one copy for all of them, and a batch is an index into it.

The file's name carries a key of the episodes (paths, frame files' sizes and modification
times) and the size, so a change to the episodes or the size makes a new one; older caches
of the same size in the folder are deleted then. It is written under a temporary name and
renamed into place (:func:`edgeact.fileio.atomic_path`): an interrupted build leaves nothing
that a later run would take for a cache.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeact.data.episodes import Episode
from edgeact.errors import DataError
from edgeact.fileio import atomic_path

CACHE_DIR_NAME = ".edgeact-cache"  # beside the episodes; hidden, so it is never read as an episode
_FORMAT = 1  # bump when the cached content changes for the same episodes and size


@dataclass
class FrameCache:
    """Decoded frames of ``episodes`` in order: row ``offsets[e] + t`` is frame ``t`` of episode ``e``."""

    path: Path
    frames: np.ndarray  # (N, H, W, 3) uint8, memory-mapped copy-on-write (writes never reach the file)
    offsets: np.ndarray  # (E,) first row of each episode

    def rows(self, episode_indices: Sequence[int], lengths: Sequence[int]) -> np.ndarray:
        """The cache rows of the frames of the given episodes (by index into the cached list), in order."""
        return np.concatenate([self.offsets[e] + np.arange(n) for e, n in zip(episode_indices, lengths)])


def cache_key(episodes: Sequence[Episode], size: tuple[int, int]) -> str:
    """What the cached frames depend on: the size and every frame file (path, bytes, modification time)."""
    digest = hashlib.sha256(f"edgeact frames v{_FORMAT} {size[0]}x{size[1]}".encode())
    for ep in episodes:
        digest.update(f"\n{ep.path.resolve()} {len(ep)}".encode())
        for p in ep.frame_paths:
            st = p.stat()
            digest.update(f"\n{p.name} {st.st_size} {st.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def default_cache_dir(data: Path) -> Path:
    """``DATA/.edgeact-cache`` when the episodes' folder is writable, else a folder under the user's cache."""
    data = Path(data).resolve()
    if os.access(data, os.W_OK):
        return data / CACHE_DIR_NAME
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "edgeact" / "frames" / hashlib.sha256(str(data).encode()).hexdigest()[:16]


def cache_bytes(episodes: Sequence[Episode], size: tuple[int, int]) -> int:
    return sum(len(ep) for ep in episodes) * size[0] * size[1] * 3


def fits_on_disk(directory: Path, nbytes: int, margin: float = 0.1) -> bool:
    """Whether ``nbytes`` fit in ``directory``'s file system with ``margin`` of it left free."""
    probe = directory
    while not probe.exists():
        probe = probe.parent
    usage = shutil.disk_usage(probe)
    return nbytes <= usage.free - margin * usage.total


def open_cache(episodes: Sequence[Episode], size: tuple[int, int], directory: Path) -> FrameCache | None:
    """The cache of these episodes at ``size`` in ``directory``, or None when there is none (or it is damaged)."""
    path = _cache_path(directory, size, cache_key(episodes, size))
    if not path.is_file():
        return None
    try:
        frames = np.load(path, mmap_mode="c")
    except (OSError, ValueError):
        return None
    if frames.dtype != np.uint8 or frames.shape != (sum(len(ep) for ep in episodes), *size, 3):
        return None
    return FrameCache(path, frames, _offsets(episodes))


def build_cache(episodes: Sequence[Episode], size: tuple[int, int], directory: Path, *, threads: int = 1,
                progress: Callable[[int], None] | None = None) -> FrameCache:
    """Decode every frame at ``size`` into a new cache file in ``directory`` and open it.

    ``threads`` decode at once (OpenCV releases the GIL while it decodes and resizes);
    ``progress(n)`` is called as frames are done. Older caches of this size in ``directory``
    (of an earlier version of the episodes) are deleted once the new one is in place.
    """
    path = _cache_path(directory, size, cache_key(episodes, size))
    with atomic_path(path) as tmp:
        _write_frames(tmp, episodes, size, threads, progress)
    for stale in directory.glob(f"frames-{size[0]}x{size[1]}-*.npy"):
        if stale != path:
            stale.unlink(missing_ok=True)
    cache = open_cache(episodes, size, directory)
    if cache is None:
        raise DataError(f"the frame cache {path} could not be read back after writing it; delete {directory} and "
                        "train again, or train without the cache (--frame-cache off)")
    return cache


def _write_frames(path: Path, episodes: Sequence[Episode], size: tuple[int, int], threads: int,
                  progress: Callable[[int], None] | None) -> None:
    offsets = _offsets(episodes)
    jobs = [(e, t) for e, ep in enumerate(episodes) for t in range(len(ep))]
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(len(jobs), *size, 3))

    def decode(job: tuple[int, int]) -> None:
        e, t = job
        out[offsets[e] + t] = episodes[e].fitted_frame(t, size)

    with ThreadPoolExecutor(max(1, threads)) as pool:
        for _ in pool.map(decode, jobs):
            if progress is not None:
                progress(1)
    out.flush()


def _cache_path(directory: Path, size: tuple[int, int], key: str) -> Path:
    return Path(directory) / f"frames-{size[0]}x{size[1]}-{key}.npy"


def _offsets(episodes: Sequence[Episode]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum([len(ep) for ep in episodes])[:-1]]).astype(np.int64)
