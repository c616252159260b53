"""Export rover episodes as a LeRobotDataset v3.0 (the reverse of :mod:`edgeact.data.lerobot_import`).

So that a dataset recorded with edgeact (simulator or rover) trains with ``lerobot-train``
on a cluster, and the result deploys with edgeact. What is written::

    meta/info.json                               codebase_version v3.0, fps, features, path templates
    meta/stats.json                              mean/std/min/max/count per feature (images per channel, [0, 1])
    meta/tasks.parquet                           one task, "drive the rover along the road", index 0
    meta/episodes/chunk-000/file-000.parquet     per episode: length, its rows in data/, its span in the video
    data/chunk-000/file-000.parquet              one row per frame: observation.state, action, timestamp,
                                                 frame_index, episode_index, index, task_index
    videos/observation.images.cam_front/chunk-000/file-000.mp4
                                                 every episode's frames, one after another (H.264 or AV1, yuv420p)

Timestamps are written as ``frame_index / fps``: LeRobot finds a frame in the video at
``from_timestamp + timestamp``, so that is what its timestamps must mean. Actions and states
are float32, exactly as the episodes hold them; frames go through a lossy video codec.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from edgeact.data.episodes import ACTION_NAMES, Episode, load_episodes
from edgeact.errors import DataError, EdgeactError

CODEBASE_VERSION = "v3.0"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
DEFAULT_TASK = "drive the rover along the road"
CODECS = {"h264": "libx264", "av1": "libsvtav1"}  # LeRobot's own default is AV1 (libsvtav1)


def export_lerobot(
    src: str | os.PathLike | Sequence[Episode],
    dst: str | os.PathLike,
    *,
    camera_key: str = "observation.images.cam_front",
    task: str = DEFAULT_TASK,
    codec: str = "h264",
    crf: int = 18,
    robot_type: str = "edgeact_rover",
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Write the episodes in ``src`` as a LeRobotDataset v3.0 at ``dst`` (new or empty); returns ``dst``."""
    import pyarrow.parquet as pq

    episodes = list(src) if not isinstance(src, (str, os.PathLike)) else load_episodes(src)
    if not episodes:
        raise DataError(f"{src}: no episodes to export")
    if codec not in CODECS:
        raise EdgeactError(f"unknown codec {codec!r}; choose {' or '.join(CODECS)}")
    dst = Path(dst)
    if dst.exists() and any(dst.iterdir()):
        raise DataError(f"{dst} exists and is not empty; export into a new folder")
    first = episodes[0]
    fps, (h, w) = float(first.fps), first.image_size
    if any(float(e.fps) != fps or tuple(e.image_size) != (h, w) for e in episodes):
        raise DataError(f"{src}: episodes differ in fps or frame size; a LeRobot dataset has one of each")
    if h % 2 or w % 2:
        raise DataError(f"{src}: frames are {h}x{w}; yuv420p video needs an even height and width")
    if any(e.state_names != first.state_names for e in episodes):
        raise DataError(f"{src}: episodes have different state columns")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    try:
        video_rel = VIDEO_PATH.format(video_key=camera_key, chunk_index=0, file_index=0)
        spans = _write_video(episodes, tmp / video_rel, fps, codec, crf, progress)
        rows = _frame_table(episodes, fps)
        (tmp / "data" / "chunk-000").mkdir(parents=True)
        pq.write_table(rows, tmp / DATA_PATH.format(chunk_index=0, file_index=0))
        _write_episodes_table(episodes, spans, camera_key, task, tmp)
        _write_tasks(task, tmp)
        features = _features(first, camera_key, fps, codec)
        info = {
            "codebase_version": CODEBASE_VERSION, "robot_type": robot_type,
            "total_episodes": len(episodes), "total_frames": int(rows.num_rows), "total_tasks": 1,
            "chunks_size": 1000, "data_files_size_in_mb": 100, "video_files_size_in_mb": 500, "fps": _fps_value(fps),
            "splits": {"train": f"0:{len(episodes)}"}, "data_path": DATA_PATH, "video_path": VIDEO_PATH,
            "features": features,
        }
        (tmp / "meta" / "info.json").write_text(json.dumps(info, indent=4) + "\n")
        (tmp / "meta" / "stats.json").write_text(json.dumps(_stats(episodes, camera_key, rows), indent=4) + "\n")
        if dst.exists():
            dst.rmdir()
        os.replace(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dst


def _fps_value(fps: float) -> int | float:
    return int(fps) if float(fps).is_integer() else fps


def _features(ep: Episode, camera_key: str, fps: float, codec: str) -> dict[str, Any]:
    h, w = ep.image_size
    scalar = {"shape": [1], "names": None}
    return {
        camera_key: {
            "dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"],
            "info": {"video.height": h, "video.width": w, "video.codec": codec, "video.pix_fmt": "yuv420p",
                     "video.is_depth_map": False, "video.fps": _fps_value(fps), "video.channels": 3,
                     "has_audio": False},
        },
        "observation.state": {"dtype": "float32", "shape": [len(ep.state_names)], "names": list(ep.state_names)},
        "action": {"dtype": "float32", "shape": [len(ACTION_NAMES)], "names": list(ACTION_NAMES)},
        "timestamp": {"dtype": "float32", **scalar},
        "frame_index": {"dtype": "int64", **scalar},
        "episode_index": {"dtype": "int64", **scalar},
        "index": {"dtype": "int64", **scalar},
        "task_index": {"dtype": "int64", **scalar},
    }


def _frame_table(episodes: Sequence[Episode], fps: float):
    import pyarrow as pa

    states = np.concatenate([e.states for e in episodes]).astype(np.float32)
    actions = np.concatenate([e.actions for e in episodes]).astype(np.float32)
    frame_index = np.concatenate([np.arange(len(e), dtype=np.int64) for e in episodes])
    episode_index = np.concatenate([np.full(len(e), i, np.int64) for i, e in enumerate(episodes)])

    def vectors(x: np.ndarray):
        return pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1), pa.float32()), x.shape[1])

    return pa.table({
        "observation.state": vectors(states),
        "action": vectors(actions),
        "timestamp": pa.array((frame_index / fps).astype(np.float32)),
        "frame_index": pa.array(frame_index),
        "episode_index": pa.array(episode_index),
        "index": pa.array(np.arange(len(frame_index), dtype=np.int64)),
        "task_index": pa.array(np.zeros(len(frame_index), np.int64)),
    })


def _write_video(episodes: Sequence[Episode], path: Path, fps: float, codec: str, crf: int,
                 progress: Callable[[str], None] | None) -> list[tuple[float, float]]:
    """Encode every episode's frames into one file; returns each episode's (from, to) timestamps."""
    try:
        import av
    except ImportError:
        raise EdgeactError("exporting video needs PyAV: pip install av (or pip install 'edgeact[torch]')") from None
    if CODECS[codec] not in av.codecs_available:
        raise EdgeactError(f"this PyAV build has no {CODECS[codec]} encoder; try --codec "
                           f"{' or '.join(c for c in CODECS if c != codec)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = episodes[0].image_size
    spans, written = [], 0
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(CODECS[codec], rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        # a key frame every 2 frames, as LeRobot encodes: random access to any frame stays cheap
        stream.options = {"crf": str(crf), "g": "2"}
        for i, ep in enumerate(episodes):
            spans.append((written / fps, (written + len(ep)) / fps))
            for k in range(len(ep)):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(ep.load_frame(k)), format="rgb24")
                for packet in stream.encode(frame):
                    container.mux(packet)
            written += len(ep)
            if progress:
                progress(f"episode {i + 1}/{len(episodes)}: {ep.name}, {len(ep)} frames")
        for packet in stream.encode():
            container.mux(packet)
    return spans


def _write_episodes_table(episodes: Sequence[Episode], spans: list[tuple[float, float]], camera_key: str,
                          task: str, root: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    lengths = [len(e) for e in episodes]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    n = len(episodes)
    zeros = [0] * n
    table = pa.table({
        "episode_index": pa.array(np.arange(n, dtype=np.int64)),
        "tasks": pa.array([[task]] * n, pa.list_(pa.string())),
        "length": pa.array(np.asarray(lengths, np.int64)),
        "data/chunk_index": pa.array(zeros, pa.int64()),
        "data/file_index": pa.array(zeros, pa.int64()),
        "dataset_from_index": pa.array(starts),
        "dataset_to_index": pa.array(starts + np.asarray(lengths, np.int64)),
        f"videos/{camera_key}/chunk_index": pa.array(zeros, pa.int64()),
        f"videos/{camera_key}/file_index": pa.array(zeros, pa.int64()),
        f"videos/{camera_key}/from_timestamp": pa.array([s[0] for s in spans], pa.float64()),
        f"videos/{camera_key}/to_timestamp": pa.array([s[1] for s in spans], pa.float64()),
        "meta/episodes/chunk_index": pa.array(zeros, pa.int64()),
        "meta/episodes/file_index": pa.array(zeros, pa.int64()),
    })
    folder = root / "meta" / "episodes" / "chunk-000"
    folder.mkdir(parents=True)
    pq.write_table(table, folder / "file-000.parquet")


def _write_tasks(task: str, root: Path) -> None:
    """meta/tasks.parquet as pandas writes a DataFrame indexed by task text (LeRobot reads it with pandas)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pandas_meta = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                            "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
             "metadata": None},
            {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode", "numpy_type": "object",
             "metadata": None},
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.3",
    }
    table = pa.table({"task_index": pa.array([0], pa.int64()), "__index_level_0__": pa.array([task])})
    table = table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})
    pq.write_table(table, root / "meta" / "tasks.parquet")


def _stats(episodes: Sequence[Episode], camera_key: str, rows) -> dict[str, dict[str, Any]]:
    from edgeact.data.stats import image_stats

    def vector(x: np.ndarray) -> dict[str, Any]:
        x = np.asarray(x, np.float64).reshape(len(x), -1)
        return {"min": x.min(0).tolist(), "max": x.max(0).tolist(), "mean": x.mean(0).tolist(),
                "std": x.std(0).tolist(), "count": [len(x)]}

    out = {camera_key: {k: np.asarray(v).tolist() for k, v in image_stats(episodes).items()}}
    out[camera_key]["count"] = [min(500, int(rows.num_rows))]
    for key in ("observation.state", "action", "timestamp", "frame_index", "episode_index", "index", "task_index"):
        column = rows[key].to_numpy(zero_copy_only=False)
        out[key] = vector(np.stack(column) if column.dtype == object else column)
    return out
