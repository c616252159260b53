"""`edgeact hailo calib`: the calibration set the Dataflow Compiler's optimizer is given.

What the optimizer wants (HAILO-FACTS, Hailo's model zoo): NHWC float32 frames at the
network's input size, raw 0–255 pixels because the model script's ``normalization`` layer
normalizes on the chip, RGB as the camera delivers them through ``fit_frame`` (the guide's
script stored OpenCV's BGR). With several input layers (``full`` mode: image and state
token), a dict keyed by the layers' names (``edgeact_act/input_layer1``, …) saved as ``.npz``.

Frames are spread over episodes, time and steering rather than the first N: candidate frames
are binned by their steering label and each bin gets an equal share (bins with too few frames
give theirs to the others); inside a bin, frames are taken evenly over episodes and time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeact.backends.hailo_part import read_part, verified_file
from edgeact.errors import DataError
from edgeact.fileio import atomic_path, atomic_write_json
from edgeact.frames import fit_frame

MIN_FRAMES = 32  # Hailo's quantization lesson: "a calibration set, typically the size of 32-96 items"
STEERING_BINS = 9


@dataclass
class Coverage:
    frames: int
    episodes_used: int
    episodes_total: int
    steering_edges: list[float]
    steering_counts: list[int]  # selected frames per steering bin
    available_counts: list[int]  # frames in the episodes per steering bin
    per_episode: dict[str, int] = field(default_factory=dict)

    def format(self) -> str:
        width = max(self.steering_counts + [1])
        lines = [
            f"{self.frames} frames from {self.episodes_used} of {self.episodes_total} episodes; steering histogram "
            "(selected / available):"
        ]
        for i, (got, have) in enumerate(zip(self.steering_counts, self.available_counts)):
            lo, hi = self.steering_edges[i], self.steering_edges[i + 1]
            lines.append(f"  [{lo:+.2f}, {hi:+.2f}) {got:5d} / {have:<6d} {'#' * round(30 * got / width)}")
        return "\n".join(lines)


@dataclass
class CalibrationSet:
    arrays: dict[str, np.ndarray]  # input-layer name -> (N, H, W, C) float32
    coverage: Coverage
    path: Path | None = None


def select_frames(steering: np.ndarray, n: int, bins: int = STEERING_BINS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of ``n`` candidates spread over steering bins (equal shares, water-filled), evenly
    spaced inside each bin (candidates are in episode/time order). Returns (indices, edges, bin of each)."""
    lo, hi = float(np.min(steering)), float(np.max(steering))
    edges = np.linspace(lo, hi if hi > lo else lo + 1e-6, bins + 1)
    which = np.clip(np.digitize(steering, edges[1:-1]), 0, bins - 1)
    members = [np.flatnonzero(which == b) for b in range(bins)]
    quota = np.zeros(bins, int)
    left = n
    open_bins = [b for b in range(bins) if len(members[b])]
    while left > 0 and open_bins:
        share = max(1, left // len(open_bins))
        for b in list(open_bins):
            take = min(share, len(members[b]) - quota[b], left)
            quota[b] += take
            left -= take
            if quota[b] == len(members[b]):
                open_bins.remove(b)
            if left == 0:
                break
    chosen = [m[np.linspace(0, len(m) - 1, q).round().astype(int)] for m, q in zip(members, quota) if q]
    index = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, int)
    return index, edges, which


def build_calibration(
    bundle: str | Path,
    episodes_root: str | Path,
    frames: int = 1024,
    mode: str = "split",
    log: Callable[[str], None] = print,
) -> CalibrationSet:
    """Calibration arrays for the bundle's Hailo ``mode`` NPU graph from the episodes under ``episodes_root``."""
    from edgeact.export.calibration import read_episodes

    part = read_part(bundle, mode)
    _, _, h, w = part.npu_input["shape"]
    episodes = read_episodes(episodes_root)
    pool = [(e, i) for e in episodes for i in range(len(e))]
    if frames < MIN_FRAMES:
        raise DataError(
            f"--frames {frames} is too few to calibrate; Hailo suggests at least {MIN_FRAMES} (64-1024 is usual)"
        )
    if len(pool) < frames:
        raise DataError(
            f"{episodes_root} holds {len(pool)} frames in {len(episodes)} episode(s); {frames} were asked for. "
            f"Record more episodes (`edgeact sim record` or on the rover) or pass --frames {max(MIN_FRAMES, len(pool))}"
            if len(pool) >= MIN_FRAMES
            else f"{episodes_root} holds only {len(pool)} frames; calibration needs at least {MIN_FRAMES}: "
            "record more episodes"
        )
    steering = np.concatenate([np.asarray(e.actions[:, 0], np.float64) for e in episodes])
    index, edges, which = select_frames(steering, frames)
    images = np.empty((len(index), h, w, 3), np.float32)
    states = np.empty((len(index), episodes[0].states.shape[1]), np.float32)
    per_episode: dict[str, int] = {}
    for k, j in enumerate(index):
        episode, i = pool[j]
        images[k] = fit_frame(np.asarray(episode.load_frame(i)), (h, w))
        states[k] = episode.states[i]
        per_episode[episode.name] = per_episode.get(episode.name, 0) + 1
        if (k + 1) % 256 == 0:
            log(f"  calibration frames {k + 1}/{len(index)}")
    coverage = Coverage(
        len(index),
        len(per_episode),
        len(episodes),
        [float(x) for x in edges],
        np.bincount(which[index], minlength=len(edges) - 1).tolist(),
        np.bincount(which, minlength=len(edges) - 1).tolist(),
        per_episode,
    )
    arrays = {part.npu_input["layer"]: images}
    if mode == "full":
        arrays.update(_state_tokens(part, states))
    return CalibrationSet(arrays, coverage)


def _state_tokens(part, states: np.ndarray) -> dict[str, np.ndarray]:
    """The full graph's second input: the host graph's state token, as the device will see it (NHWC)."""
    import onnxruntime as ort

    host = ort.InferenceSession(
        str(verified_file(part, "host", "re-run `edgeact hailo export`")), providers=["CPUExecutionProvider"]
    )
    tokens = np.stack([host.run(None, {"state": s.reshape(1, -1)})[0].reshape(1, 1, -1) for s in states])
    return {part.block["npu"]["inputs"][1]["layer"]: tokens.astype(np.float32)}  # (N, 1, 1, D): [B,S,C] as [B,1,S,C]


def save_calibration(calib: CalibrationSet, out: str | Path) -> Path:
    """``.npy`` for one input layer, ``.npz`` keyed by layer name for several; a ``.json`` coverage file beside it."""
    out = Path(out)
    if len(calib.arrays) > 1 and out.suffix != ".npz":
        out = out.with_suffix(".npz")
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        if len(calib.arrays) == 1:
            np.save(f, next(iter(calib.arrays.values())))
        else:
            np.savez(f, **calib.arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle
    atomic_write_json(
        out.with_suffix(".json"),
        {"layers": {k: list(v.shape) for k, v in calib.arrays.items()}, "coverage": vars(calib.coverage)},
    )
    calib.path = out
    return out


def load_calibration(path: str | Path, part) -> dict[str, np.ndarray]:
    """Read a calibration file and check it against the part's NPU inputs (layout, size, dtype, range)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"calibration file not found: {path}; make it with `edgeact hailo calib {part.bundle} --episodes DIR`"
        )
    try:
        loaded: Any = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise DataError(f"{path} is not a .npy/.npz calibration file ({err})") from err
    inputs = part.block["npu"]["inputs"]
    arrays = dict(loaded) if isinstance(loaded, np.lib.npyio.NpzFile) else {inputs[0]["layer"]: loaded}
    for entry in inputs:
        layer = entry["layer"]
        if layer not in arrays:
            raise DataError(
                f"{path} has no array for input layer {layer!r} (has {sorted(arrays)}); re-run `edgeact hailo calib`"
            )
        check_calibration_array(arrays[layer], entry, path)
    return arrays


def check_calibration_array(data: np.ndarray, entry: dict[str, Any], path: Path | str) -> None:
    """DataError naming the problem: NCHW instead of NHWC, wrong size, not float32, normalized instead of 0–255."""
    b, c, h, w = entry["shape"] if len(entry["shape"]) == 4 else (1, entry["shape"][-1], 1, entry["shape"][1])
    expected = (h, w, c)
    if data.ndim != 4 or data.shape[1:] != expected:
        hint = " (looks NCHW: the optimizer takes NHWC)" if data.ndim == 4 and data.shape[1:] == (c, h, w) else ""
        raise DataError(
            f"{path}: calibration for {entry['layer']} has shape {data.shape}, expected (N, {h}, {w}, {c}) "
            f"NHWC{hint}; re-run `edgeact hailo calib`"
        )
    if data.dtype != np.float32:
        raise DataError(
            f"{path}: calibration for {entry['layer']} is {data.dtype}; the optimizer takes float32 "
            "(raw 0-255 pixels for the image)"
        )
    if entry.get("device", {}).get("range") == [0, 255]:
        lo, hi = float(data.min()), float(data.max())
        if lo < 0 or hi > 255 or hi <= 1.0:
            raise DataError(
                f"{path}: image calibration spans [{lo:.3g}, {hi:.3g}]; it must be raw 0-255 pixels "
                "(the model script normalizes), not normalized or [0, 1] frames"
            )
