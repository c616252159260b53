"""Import a LeRobotDataset v3 directory into edgeact's episode format.

LeRobotDataset v3.0 layout (what is read here)::

    meta/info.json                               codebase_version "v3.0", fps, features, data_path, video_path
    meta/episodes/chunk-000/file-000.parquet     one row per episode: episode_index, length,
                                                 videos/<key>/chunk_index, videos/<key>/file_index,
                                                 videos/<key>/from_timestamp, videos/<key>/to_timestamp
    data/chunk-000/file-000.parquet              one row per frame: episode_index, frame_index,
                                                 timestamp, observation.state, action (lists)
    videos/<key>/chunk-000/file-000.mp4          several episodes concatenated; episode e's frame at
                                                 timestamp t is at from_timestamp(e) + t in the file

Videos are decoded with OpenCV (PyAV is used if OpenCV cannot open a file and ``av`` is
installed, e.g. for AV1). Image features stored inside the parquet files (``dtype: image``)
are read too. v2.x datasets (one file per episode) are refused with the command that
converts them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeact.data.episodes import EpisodeWriter, episode_name
from edgeact.errors import DataError, EdgeactError

DEFAULT_VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"


def _pyarrow():
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise EdgeactError(
            "reading LeRobot datasets needs pyarrow: pip install pyarrow (or pip install 'edgeact[torch]')"
        ) from None
    return pq


def read_info(src: Path) -> dict[str, Any]:
    info_path = src / "meta" / "info.json"
    if not info_path.is_file():
        raise DataError(
            f"{info_path} is missing: {src} is not a LeRobotDataset directory (expected meta/info.json, data/, videos/)"
        )
    try:
        info = json.loads(info_path.read_text())
    except ValueError as err:
        raise DataError(f"{info_path} is not valid JSON ({err})") from None
    version = str(info.get("codebase_version", "?"))
    if version.startswith(("v1", "v2")):
        raise DataError(
            f"{src} is a LeRobotDataset {version}; edgeact imports v3.0 only. Convert it with LeRobot first: "
            "python -m lerobot.datasets.v30.convert_dataset_v21_to_v30 --repo-id=<repo id> "
            "(a v2.0 dataset needs the v2.0 → v2.1 conversion before that)"
        )
    if not version.startswith("v3"):
        raise DataError(f"{info_path}: unsupported codebase_version {version!r}; edgeact imports LeRobotDataset v3.0")
    for key in ("fps", "features"):
        if key not in info:
            raise DataError(f"{info_path} has no {key!r}")
    return info


def _camera_key(info: dict[str, Any], requested: str | None, src: Path) -> tuple[str, str]:
    cams = {k: f.get("dtype") for k, f in info["features"].items() if f.get("dtype") in ("video", "image")}
    if not cams:
        raise DataError(f"{src}: meta/info.json lists no camera (no feature with dtype video or image)")
    if requested is not None:
        key = requested if requested in cams else f"observation.images.{requested}"
        if key not in cams:
            raise DataError(f"{src}: no camera {requested!r}; the dataset has {sorted(cams)}")
        return key, cams[key]
    if len(cams) > 1:
        raise DataError(f"{src} has several cameras {sorted(cams)}; choose one (camera_key=…, --camera)")
    key = next(iter(cams))
    return key, cams[key]


def _read_tables(files: list[Path], columns: list[str] | None, what: str):
    pq = _pyarrow()
    import pyarrow as pa

    tables = []
    for f in files:
        try:
            t = pq.read_table(f, columns=columns)
        except Exception as err:  # noqa: BLE001 - pyarrow raises many kinds
            raise DataError(f"cannot read {what} {f}: {err}") from None
        tables.append(t)
    return pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]


def _state_names(feature: dict[str, Any], dim: int) -> list[str]:
    names = feature.get("names")
    if isinstance(names, dict):  # e.g. {"motors": [...]}
        names = next(iter(names.values()), None)
    if isinstance(names, list) and len(names) == dim and all(isinstance(n, str) for n in names):
        clean = ["".join(c if c.isalnum() or c == "_" else "_" for c in n) for n in names]
        if len(set(clean)) == dim:
            return clean
    return [f"s{i}" for i in range(dim)]


def _have_av() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


class _VideoFrames:
    """Sequential decoding of one video file by frame number (OpenCV, PyAV fallback)."""

    def __init__(self, path: Path, codec: str = "") -> None:
        if not path.is_file():
            raise DataError(f"video {path} is missing")
        self.path = path
        # OpenCV's bundled FFmpeg usually has no AV1 decoder (LeRobot's default codec): go
        # straight to PyAV for those when it is installed
        self._prefer_av = codec.lower() in ("av1", "libsvtav1", "libaom-av1", "libdav1d") and _have_av()
        self._open()

    def _open(self) -> None:
        self.pos = 0
        self.last: np.ndarray | None = None
        self._av = None
        if self._prefer_av:
            self._av = self._open_av()
            return
        self.cap = cv2.VideoCapture(str(self.path))
        ok = self.cap.isOpened()
        first = None
        if ok:
            ok, first = self.cap.read()
        if not ok:
            self.cap.release()
            self._av = self._open_av()
            return
        self._pending = first

    def _open_av(self):
        try:
            import av
        except ImportError:
            raise DataError(
                f"OpenCV cannot decode {self.path} (codec unsupported by this OpenCV build, e.g. AV1). "
                "pip install av, or re-encode it: ffmpeg -i in.mp4 -c:v libx264 -pix_fmt yuv420p out.mp4"
            ) from None
        try:
            container = av.open(str(self.path))
            return container, container.decode(video=0)
        except Exception as err:  # noqa: BLE001
            raise DataError(f"cannot decode {self.path}: {err}") from None

    def _read(self) -> np.ndarray | None:
        if self._av is not None:
            try:
                return next(self._av[1]).to_ndarray(format="rgb24")
            except StopIteration:
                return None
        if self._pending is not None:
            frame, self._pending = self._pending, None
        else:
            ok, frame = self.cap.read()
            if not ok:
                return None
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def get(self, n: int) -> np.ndarray:
        if self.last is not None and n == self.pos - 1:
            return self.last
        if n < self.pos:
            self.close()
            self._open()
        while self.pos <= n:
            frame = self._read()
            if frame is None:
                raise DataError(f"{self.path} ends after {self.pos} frames; frame {n} is needed")
            self.last = frame
            self.pos += 1
        return self.last

    def close(self) -> None:
        if self._av is not None:
            self._av[0].close()
        else:
            self.cap.release()


def import_lerobot(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    camera_key: str | None = None,
    jpeg_quality: int = 95,
    progress: Callable[[str], None] | None = None,
) -> list[Path]:
    """Convert LeRobotDataset v3 ``src`` into episodes ``dst/episode_000`` …; returns their paths.

    Actions must be 2-D [steering, throttle] in [-1, 1]; ``observation.state`` (if present)
    becomes state_* columns named after the feature's names.
    """
    src, dst = Path(src), Path(dst)
    info = read_info(src)
    fps = float(info["fps"])
    features = info["features"]
    key, cam_dtype = _camera_key(info, camera_key, src)
    action_f = features.get("action")
    if action_f is None or list(action_f.get("shape", [])) != [2]:
        raise DataError(
            f"{src}: edgeact rover episodes need a 2-value action [steering, throttle]; "
            f"this dataset's action feature is {action_f}"
        )
    state_f = features.get("observation.state")
    if dst.exists() and any(p.name.startswith("episode_") for p in dst.iterdir()):
        raise DataError(f"{dst} already holds episodes; import into an empty or new folder")

    data_files = sorted((src / "data").glob("chunk-*/file-*.parquet"))
    if not data_files:
        raise DataError(f"{src / 'data'} holds no chunk-*/file-*.parquet files; the dataset is incomplete")
    columns = ["episode_index", "frame_index", "timestamp", "action"]
    if state_f is not None:
        columns.append("observation.state")
    if cam_dtype == "image":
        columns.append(key)
    table = _read_tables(data_files, None, "data file")
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise DataError(f"{src / 'data'}: parquet files lack columns {missing}")
    ep_idx = np.asarray(table["episode_index"].to_numpy(zero_copy_only=False), dtype=np.int64)
    frame_idx = np.asarray(table["frame_index"].to_numpy(zero_copy_only=False), dtype=np.int64)
    timestamps = np.asarray(table["timestamp"].to_numpy(zero_copy_only=False), dtype=np.float64)
    actions = np.asarray(table["action"].to_pylist(), dtype=np.float64)
    states = np.asarray(table["observation.state"].to_pylist(), dtype=np.float64) if state_f is not None else None
    images = table[key].to_pylist() if cam_dtype == "image" else None

    ep_meta: dict[int, dict[str, Any]] = {}
    if cam_dtype == "video":
        ep_files = sorted((src / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
        if not ep_files:
            raise DataError(
                f"{src / 'meta' / 'episodes'} holds no chunk-*/file-*.parquet files; "
                "they say where each episode lies in the videos"
            )
        need = [f"videos/{key}/chunk_index", f"videos/{key}/file_index", f"videos/{key}/from_timestamp"]
        et = _read_tables(ep_files, None, "episodes metadata file")
        lacking = [c for c in ["episode_index", *need] if c not in et.column_names]
        if lacking:
            raise DataError(f"{src / 'meta' / 'episodes'}: parquet files lack columns {lacking}")
        for row in et.select(["episode_index", *need]).to_pylist():
            ep_meta[int(row["episode_index"])] = row
    video_fps = float(features[key].get("info", {}).get("video.fps", fps)) if cam_dtype == "video" else fps
    video_template = info.get("video_path") or DEFAULT_VIDEO_PATH
    codec = str(features[key].get("info", {}).get("video.codec", "")) if cam_dtype == "video" else ""

    written: list[Path] = []
    readers: dict[Path, _VideoFrames] = {}
    state_names = _state_names(state_f, states.shape[1]) if states is not None else None
    episodes = sorted(set(ep_idx.tolist()))
    try:
        for out_i, e in enumerate(episodes):
            rows = np.nonzero(ep_idx == e)[0]
            rows = rows[np.argsort(frame_idx[rows], kind="stable")]
            a = actions[rows]
            if not np.all(np.isfinite(a)) or np.any(np.abs(a) > 1.0 + 1e-6):
                raise DataError(
                    f"{src}: episode {e}: actions outside [-1, 1] or not finite (min {np.nanmin(a):.3f}, "
                    f"max {np.nanmax(a):.3f}); edgeact rover episodes hold steering and throttle in [-1, 1]"
                )
            if cam_dtype == "video":
                if e not in ep_meta:
                    raise DataError(f"{src}: episode {e} has no row in meta/episodes/*.parquet")
                m = ep_meta[e]
                vpath = src / video_template.format(
                    video_key=key,
                    chunk_index=int(m[f"videos/{key}/chunk_index"]),
                    file_index=int(m[f"videos/{key}/file_index"]),
                )
                if vpath not in readers:
                    readers[vpath] = _VideoFrames(vpath, codec)
                reader = readers[vpath]
                start = float(m[f"videos/{key}/from_timestamp"])
            out_path = dst / episode_name(out_i)
            meta = {"source": "lerobot", "lerobot_episode_index": int(e), "camera_key": key, "source_path": str(src)}
            with EpisodeWriter(out_path, fps, state_names=state_names, jpeg_quality=jpeg_quality, meta=meta) as w:
                for r in rows:
                    if cam_dtype == "video":
                        frame = reader.get(int(round((start + timestamps[r]) * video_fps)))
                    else:
                        frame = _decode_image_cell(images[r], src, e)
                    w.add(frame, actions[r], float(timestamps[r]), None if states is None else states[r])
            written.append(out_path)
            if progress:
                progress(f"episode {out_i + 1}/{len(episodes)}: lerobot episode {e}, {len(rows)} frames → {out_path}")
    finally:
        for r in readers.values():
            r.close()
    return written


def _decode_image_cell(cell: Any, src: Path, episode: int) -> np.ndarray:
    data = cell.get("bytes") if isinstance(cell, dict) else cell
    if data is None and isinstance(cell, dict) and cell.get("path"):
        p = Path(cell["path"])
        data = (p if p.is_absolute() else src / p).read_bytes()
    if not isinstance(data, (bytes, bytearray)):
        raise DataError(f"{src}: episode {episode}: an image cell holds no encoded image bytes")
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DataError(f"{src}: episode {episode}: an image cell could not be decoded")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
