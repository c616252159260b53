"""Rover episodes on disk: one directory per episode, read, validated and written atomically.

::

    episodes/
      episode_000/
        frames/000000.jpg …      one front-camera RGB frame per control step
        data.csv                 frame,timestamp,steering,throttle   (+ optional state_*, intervention)
        meta.json                {"fps": 30, "image_size": [H, W], ...}

steering and throttle are in [-1, 1]. ``intervention`` (0 or 1, recorded by ``edgeact
drive``) flags the steps where a person took over from the policy. Without state columns, the state at step t is the
command at t-1 (zeros at t = 0). Every problem found raises :class:`DataError` naming the
episode, the file and what is wrong.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeact.errors import DataError
from edgeact.fileio import atomic_write_json, atomic_write_text
from edgeact.frames import fit_frame

ACTION_NAMES = ("steering", "throttle")
REQUIRED_COLUMNS = ("frame", "timestamp", *ACTION_NAMES)
INTERVENTION_COLUMN = "intervention"
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")
_RANGE_TOL = 1e-6


@dataclass
class Episode:
    """One episode in memory; frames stay on disk and are decoded on demand."""

    name: str
    path: Path
    fps: float
    image_size: tuple[int, int]  # (H, W)
    timestamps: np.ndarray  # (T,) float64 seconds
    actions: np.ndarray  # (T, 2) float32 [steering, throttle]
    states: np.ndarray  # (T, S) float32
    frame_paths: list[Path]
    state_names: tuple[str, ...] = ("steering", "throttle")
    state_from_columns: bool = False  # False: states derived from the previous command
    meta: dict[str, Any] = field(default_factory=dict)
    interventions: np.ndarray | None = None  # (T,) bool: a person took over at that step; None: no column

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def duration_s(self) -> float:
        return len(self) / self.fps

    def load_frame(self, i: int) -> np.ndarray:
        """Frame ``i`` as HxWx3 uint8 RGB."""
        return read_frame(self.frame_paths[i], self.name)

    def fitted_frame(self, i: int, size: tuple[int, int]) -> np.ndarray:
        """Frame ``i`` as the model takes it at ``size`` (H, W): checked against meta.json's size, then
        centre-cropped and resized as the runtime fits a camera frame (:func:`edgeact.frames.fit_frame`)."""
        img = self.load_frame(i)
        if img.shape[:2] != self.image_size:
            raise DataError(f"{self.name}: {self.frame_paths[i]} is {img.shape[:2]} (H, W) but meta.json says "
                            f"{list(self.image_size)}")
        return fit_frame(img, size)


def read_frame(path: Path, episode: str = "") -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        where = f"{episode}: " if episode else ""
        what = "missing" if not Path(path).exists() else "unreadable (not a valid image)"
        raise DataError(f"{where}frame {path} is {what}; re-record or re-import this episode")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def previous_command_states(actions: np.ndarray) -> np.ndarray:
    """The data convention for states without state columns: state[t] = action[t-1], zeros at t=0."""
    states = np.zeros_like(actions, dtype=np.float32)
    states[1:] = actions[:-1]
    return states


# ---------------------------------------------------------------------- reading
def _read_meta(ep_dir: Path, name: str) -> dict[str, Any]:
    meta_path = ep_dir / "meta.json"
    if not meta_path.is_file():
        raise DataError(
            f"{name}: {meta_path} is missing; each episode needs meta.json with "
            '{"fps": 30, "image_size": [H, W]}'
        )
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{name}: {meta_path} is not valid JSON ({err})") from None
    if not isinstance(meta, dict):
        raise DataError(f"{name}: {meta_path} must hold a JSON object with fps and image_size")
    fps = meta.get("fps")
    if not isinstance(fps, (int, float)) or isinstance(fps, bool) or not math.isfinite(fps) or fps <= 0:
        raise DataError(f"{name}: {meta_path}: fps must be a positive number, got {fps!r}")
    size = meta.get("image_size")
    if (
        not isinstance(size, (list, tuple))
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise DataError(f"{name}: {meta_path}: image_size must be [H, W] (positive integers), got {size!r}")
    return meta


def _read_csv(csv_path: Path, name: str) -> tuple[list[str], np.ndarray]:
    if not csv_path.is_file():
        raise DataError(f"{name}: {csv_path} is missing; it must hold the columns {','.join(REQUIRED_COLUMNS)}")
    try:
        text = csv_path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{name}: cannot read {csv_path} ({err})") from None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise DataError(f"{name}: {csv_path} is empty; expected the header {','.join(REQUIRED_COLUMNS)}")
    header = [h.strip() for h in rows[0]]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    unknown = [c for c in header if c not in (*REQUIRED_COLUMNS, INTERVENTION_COLUMN) and not c.startswith("state_")]
    if missing or unknown or len(set(header)) != len(header):
        problems = []
        if missing:
            problems.append(f"missing {missing}")
        if unknown:
            problems.append(f"unknown {unknown}")
        if len(set(header)) != len(header):
            problems.append("duplicate column names")
        raise DataError(
            f"{name}: {csv_path} has a bad header {header} ({'; '.join(problems)}); expected "
            f"{','.join(REQUIRED_COLUMNS)} plus optional state_* and {INTERVENTION_COLUMN} columns"
        )
    body = [r for r in rows[1:] if r and any(c.strip() for c in r)]
    if not body:
        raise DataError(f"{name}: {csv_path} has a header but no rows")
    values = np.empty((len(body), len(header)), dtype=np.float64)
    for i, row in enumerate(body):
        if len(row) != len(header):
            raise DataError(f"{name}: {csv_path} line {i + 2}: {len(row)} values for {len(header)} columns")
        try:
            values[i] = [float(c) for c in row]
        except ValueError:
            raise DataError(f"{name}: {csv_path} line {i + 2}: not a number in {row}") from None
    return header, values


def _frame_path(frames_dir: Path, index: int) -> Path | None:
    for ext in FRAME_EXTENSIONS:
        p = frames_dir / f"{index:06d}{ext}"
        if p.is_file():
            return p
    return None


def read_episode(path: str | os.PathLike, check_first_frame: bool = True) -> Episode:
    """Read and validate one episode directory (frames are checked to exist, not all decoded).

    ``check_first_frame`` decodes frame 0 to check it is an image of meta.json's image_size;
    :func:`validate_frames` decodes them all.
    """
    ep_dir = Path(path)
    name = ep_dir.name
    if not ep_dir.is_dir():
        raise DataError(f"{name}: {ep_dir} is not a directory")
    meta = _read_meta(ep_dir, name)
    csv_path = ep_dir / "data.csv"
    header, values = _read_csv(csv_path, name)
    col = {h: values[:, i] for i, h in enumerate(header)}
    bad = ~np.isfinite(values)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(
            f"{name}: {csv_path} line {r + 2}, column {header[c]!r}: {values[r, c]} (NaN/inf values are not allowed)"
        )
    for key in ACTION_NAMES:
        out = np.abs(col[key]) > 1.0 + _RANGE_TOL
        if out.any():
            r = int(np.argmax(out))
            raise DataError(
                f"{name}: {csv_path} line {r + 2}: {key} = {col[key][r]} is outside [-1, 1]; "
                "rover commands are normalized to [-1, 1]"
            )
    interventions = None
    if INTERVENTION_COLUMN in col:
        flags = col[INTERVENTION_COLUMN]
        if not np.all((flags == 0) | (flags == 1)):
            r = int(np.argmax((flags != 0) & (flags != 1)))
            raise DataError(f"{name}: {csv_path} line {r + 2}: {INTERVENTION_COLUMN} must be 0 or 1, got {flags[r]}")
        interventions = flags.astype(bool)
    frame_idx = col["frame"]
    if not np.all(frame_idx == np.round(frame_idx)) or np.any(frame_idx < 0):
        raise DataError(f"{name}: {csv_path}: the frame column must hold non-negative integers")
    ts = col["timestamp"]
    if len(ts) > 1 and np.any(np.diff(ts) <= 0):
        r = int(np.argmax(np.diff(ts) <= 0)) + 1
        raise DataError(f"{name}: {csv_path} line {r + 2}: timestamps must increase ({ts[r - 1]} then {ts[r]})")
    frames_dir = ep_dir / "frames"
    if not frames_dir.is_dir():
        raise DataError(f"{name}: {frames_dir} is missing; it must hold one image per data.csv row")
    on_disk = sorted(p for p in frames_dir.iterdir() if p.suffix.lower() in FRAME_EXTENSIONS)
    frame_paths: list[Path] = []
    missing = []
    for f in frame_idx.astype(np.int64):
        p = _frame_path(frames_dir, int(f))
        if p is None:
            missing.append(f"{int(f):06d}.jpg")
        else:
            frame_paths.append(p)
    if missing or len(on_disk) != len(frame_idx):
        detail = f"; missing {missing[:5]}{' …' if len(missing) > 5 else ''}" if missing else ""
        raise DataError(
            f"{name}: length mismatch: {csv_path} has {len(frame_idx)} rows but {frames_dir} holds "
            f"{len(on_disk)} images{detail}"
        )
    h, w = meta["image_size"]
    if check_first_frame:
        first = read_frame(frame_paths[0], name)
        if first.shape[:2] != (h, w):
            raise DataError(
                f"{name}: {frame_paths[0]} is {first.shape[1]}x{first.shape[0]} (WxH) but meta.json says "
                f"image_size [H, W] = [{h}, {w}]"
            )
    actions = np.stack([col[k] for k in ACTION_NAMES], axis=1).astype(np.float32)
    state_cols = [c for c in header if c.startswith("state_")]
    if state_cols:
        states = np.stack([col[c] for c in state_cols], axis=1).astype(np.float32)
        state_names = tuple(c[len("state_") :] for c in state_cols)
    else:
        states = previous_command_states(actions)
        state_names = ACTION_NAMES
    return Episode(
        name=name,
        path=ep_dir,
        fps=float(meta["fps"]),
        image_size=(int(h), int(w)),
        timestamps=ts.astype(np.float64),
        actions=actions,
        states=states,
        frame_paths=frame_paths,
        state_names=state_names,
        state_from_columns=bool(state_cols),
        meta=meta,
        interventions=interventions,
    )


def validate_frames(episode: Episode) -> None:
    """Decode every frame; DataError naming the first one missing, unreadable or of the wrong size."""
    h, w = episode.image_size
    for p in episode.frame_paths:
        img = read_frame(p, episode.name)
        if img.shape[:2] != (h, w):
            raise DataError(
                f"{episode.name}: {p} is {img.shape[1]}x{img.shape[0]} (WxH) but meta.json says "
                f"image_size [H, W] = [{h}, {w}]"
            )


def _is_episode_dir(p: Path) -> bool:
    return p.is_dir() and not p.name.startswith(".") and any(
        (p / f).exists() for f in ("data.csv", "meta.json", "frames")
    )


def episode_dirs(root: str | os.PathLike) -> list[Path]:
    """Episode directories under ``root`` (sorted by name), or ``[root]`` if it is one itself."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root} is not a directory; pass a folder of episodes (episode_000/, …)")
    if _is_episode_dir(root) and (root / "data.csv").exists():
        return [root]
    found = sorted(p for p in root.iterdir() if _is_episode_dir(p))
    if not found:
        raise DataError(
            f"no episodes in {root}: expected sub-folders like episode_000/ holding frames/, data.csv, meta.json"
        )
    return found


def load_episodes(root: str | os.PathLike | Sequence[str | os.PathLike], validate: bool = False) -> list[Episode]:
    """Read every episode under ``root`` (or the given episode dirs) and check they fit together:
    one image size, one fps, one state layout. ``validate`` decodes every frame too."""
    if isinstance(root, (str, os.PathLike)):
        dirs = episode_dirs(root)
    else:
        dirs = [Path(p) for p in root]
    episodes = [read_episode(d) for d in dirs]
    if validate:
        for ep in episodes:
            validate_frames(ep)
    check_consistent(episodes)
    return episodes


def check_consistent(episodes: Sequence[Episode]) -> None:
    if not episodes:
        raise DataError("no episodes given")
    for key, what in (("image_size", "image sizes"), ("fps", "fps"), ("state_names", "state columns")):
        groups: dict[Any, list[str]] = {}
        for ep in episodes:
            groups.setdefault(getattr(ep, key), []).append(ep.name)
        if len(groups) > 1:
            desc = "; ".join(f"{v}: {', '.join(n[:3])}{' …' if len(n) > 3 else ''}" for v, n in groups.items())
            fix = " (re-record, or resize the frames to one size and fix meta.json)" if key == "image_size" else ""
            raise DataError(f"mixed {what} across episodes: {desc}{fix}")


# ---------------------------------------------------------------------- writing
def episode_name(index: int) -> str:
    return f"episode_{index:03d}"


def next_episode_index(root: str | os.PathLike) -> int:
    root = Path(root)
    if not root.is_dir():
        return 0
    taken = []
    for p in root.iterdir():
        if p.is_dir() and p.name.startswith("episode_") and p.name[8:].isdigit():
            taken.append(int(p.name[8:]))
    return max(taken) + 1 if taken else 0


def _check_range(name: str, what: str, arr: np.ndarray) -> None:
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{name}: {what} contains NaN or inf")
    if what == "actions" and np.any(np.abs(arr) > 1.0 + _RANGE_TOL):
        raise DataError(
            f"{name}: actions outside [-1, 1] (min {arr.min():.3f}, max {arr.max():.3f}); "
            "rover episodes hold steering and throttle normalized to [-1, 1]"
        )


class EpisodeWriter:
    """Writes one episode into a hidden temporary directory and moves it into place on
    ``close()`` (or the end of a ``with`` block); on error the temporary directory is removed,
    so a crash never leaves half an episode.

    ::

        with EpisodeWriter("episodes/episode_003", fps=30) as w:
            for frame, action in ...:
                w.add(frame, action)
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float,
        *,
        state_names: Sequence[str] | None = None,
        jpeg_quality: int = 95,
        meta: dict[str, Any] | None = None,
        overwrite: bool = False,
        intervention_column: bool = False,
    ) -> None:
        self.path = Path(path)
        self.intervention_column = intervention_column
        self.name = self.path.name
        if self.path.exists() and not overwrite:
            raise DataError(f"{self.path} already exists; choose another name or pass overwrite=True")
        if not (fps > 0):
            raise DataError(f"{self.name}: fps must be > 0, got {fps}")
        self.fps = float(fps)
        self.state_names = tuple(state_names) if state_names else ()
        self.jpeg_quality = int(jpeg_quality)
        self.meta = dict(meta or {})
        self.overwrite = overwrite
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.name}.", suffix=".tmp", dir=self.path.parent))
        try:
            (self._tmp / "frames").mkdir()
        except OSError:  # a full disk: no empty hidden folder left behind
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise
        self._rows: list[list[float]] = []
        self._size: tuple[int, int] | None = None
        self._closed = False

    def __len__(self) -> int:
        return len(self._rows)

    def add(
        self,
        frame: np.ndarray,
        action: Sequence[float],
        timestamp: float | None = None,
        state: Sequence[float] | None = None,
        intervention: bool = False,
    ) -> None:
        """Append one step: an HxWx3 uint8 RGB frame, [steering, throttle], optional state and
        intervention flag (written with ``intervention_column=True``)."""
        i = len(self._rows)
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise DataError(f"{self.name}: frame {i} must be HxWx3 uint8 RGB, got {frame.dtype} {frame.shape}")
        if self._size is None:
            self._size = frame.shape[:2]
        elif frame.shape[:2] != self._size:
            raise DataError(f"{self.name}: frame {i} is {frame.shape[:2]}, earlier frames are {self._size}")
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != (2,):
            raise DataError(f"{self.name}: step {i}: action must be [steering, throttle], got {action.shape}")
        _check_range(self.name, "actions", action)
        row = [float(i), float(i / self.fps if timestamp is None else timestamp), *action.tolist()]
        if self.state_names:
            if state is None:
                raise DataError(f"{self.name}: step {i}: this writer has state columns; pass state=")
            state = np.asarray(state, dtype=np.float64).reshape(-1)
            if state.shape != (len(self.state_names),):
                raise DataError(
                    f"{self.name}: step {i}: state has {state.size} values, expected {len(self.state_names)}")
            _check_range(self.name, "states", state)
            row += state.tolist()
        if self.intervention_column:
            row.append(1.0 if intervention else 0.0)
        bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise DataError(f"{self.name}: could not encode frame {i} as JPEG")
        (self._tmp / "frames" / f"{i:06d}.jpg").write_bytes(buf.tobytes())
        self._rows.append(row)

    def close(self) -> Path:
        """Finish: write data.csv and meta.json, then move the episode into place."""
        if self._closed:
            return self.path
        if not self._rows:
            self.abort()
            raise DataError(f"{self.name}: no steps were added; an episode needs at least one frame")
        header = list(REQUIRED_COLUMNS) + [f"state_{n}" for n in self.state_names]
        if self.intervention_column:
            header.append(INTERVENTION_COLUMN)
        out = io.StringIO()
        wr = csv.writer(out, lineterminator="\n")
        wr.writerow(header)
        for r in self._rows:
            wr.writerow([int(r[0]), f"{r[1]:.6f}", *(f"{v:.6g}" for v in r[2:])])
        atomic_write_text(self._tmp / "data.csv", out.getvalue())
        h, w = self._size
        meta = {"fps": self.fps if not float(self.fps).is_integer() else int(self.fps), "image_size": [h, w]}
        meta.update({k: v for k, v in self.meta.items() if k not in ("fps", "image_size")})
        meta["frames"] = len(self._rows)
        atomic_write_json(self._tmp / "meta.json", meta)
        if self.path.exists():  # overwrite: move the old one aside first, then delete it
            old = Path(tempfile.mkdtemp(prefix=f".{self.name}.", suffix=".old", dir=self.path.parent))
            os.replace(self.path, old / self.name)
            os.replace(self._tmp, self.path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self._tmp, self.path)
        self._closed = True
        return self.path

    def abort(self) -> None:
        self._closed = True
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_episode(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    actions: np.ndarray | Sequence[Sequence[float]],
    *,
    fps: float,
    timestamps: Sequence[float] | None = None,
    states: np.ndarray | None = None,
    state_names: Sequence[str] | None = None,
    meta: dict[str, Any] | None = None,
    jpeg_quality: int = 95,
    overwrite: bool = False,
) -> Path:
    """Write one episode atomically. ``frames``: HxWx3 uint8 RGB, one per row of ``actions`` (T, 2).

    ``states`` (T, S) adds state_* columns (names from ``state_names``, default s0, s1, …);
    without them readers derive the state from the previous command.
    """
    actions = np.asarray(actions, dtype=np.float64)
    name = Path(path).name
    if actions.ndim != 2 or actions.shape[1] != 2:
        raise DataError(f"{name}: actions must be (T, 2) [steering, throttle], got {actions.shape}")
    _check_range(name, "actions", actions)
    if states is not None:
        states = np.asarray(states, dtype=np.float64)
        if states.ndim != 2 or len(states) != len(actions):
            raise DataError(f"{name}: states must be (T, S) with T = {len(actions)}, got {states.shape}")
        state_names = tuple(state_names) if state_names else tuple(f"s{i}" for i in range(states.shape[1]))
    if timestamps is not None and len(timestamps) != len(actions):
        raise DataError(f"{name}: {len(timestamps)} timestamps for {len(actions)} actions")
    writer = EpisodeWriter(
        path,
        fps,
        state_names=state_names if states is not None else None,
        jpeg_quality=jpeg_quality,
        meta=meta,
        overwrite=overwrite,
    )
    with writer:
        n = 0
        for i, frame in enumerate(_limit(frames, len(actions) + 1)):
            if i >= len(actions):
                raise DataError(f"{name}: more frames than the {len(actions)} actions")
            writer.add(
                frame,
                actions[i],
                None if timestamps is None else float(timestamps[i]),
                None if states is None else states[i],
            )
            n += 1
        if n != len(actions):
            raise DataError(f"{name}: {n} frames for {len(actions)} actions; they must match")
    return writer.path


def _limit(it: Iterable, n: int) -> Iterator:
    for i, x in enumerate(it):
        if i >= n:
            return
        yield x
