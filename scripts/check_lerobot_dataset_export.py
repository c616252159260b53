"""Check that real LeRobot loads what ``edgeact data export-lerobot`` writes; record what it saw.

Run it with the Python of a LeRobot 0.4.x virtualenv (see docs/DEVELOPERS.md,
"Checking against real LeRobot"), from anywhere:

    /opt/lerobot-venv/bin/python scripts/check_lerobot_dataset_export.py

It records the seeded simulator episodes that ``edgeact sim record --episodes 2 --seconds 2
--size 96x128`` writes (seed 0, oval), exports them as ``edgeact data export-lerobot`` does
(H.264), and loads the result with LeRobot's ``LeRobotDataset`` (PyAV video backend). Every
item LeRobot returns is compared with the episodes' data.csv (actions and states exactly, the
right episode/frame/timestamp, the frame within video tolerance); then what LeRobot saw goes to
``tests/fixtures/lerobot/dataset_export_loaded.json``, which
``tests/data/test_data_lerobot_fixture.py`` compares with a fresh export in CI (no LeRobot
there). edgeact is imported from ``src/`` of this checkout (no install in the LeRobot venv).
"""

from __future__ import annotations

import csv
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "fixtures" / "lerobot" / "dataset_export_loaded.json"
sys.path.insert(0, str(REPO / "src"))  # edgeact from this checkout

import av  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
import torchvision.io  # noqa: E402


class _PyAVVideoReader:
    """torchvision.io.VideoReader's "pyav" path, which torchvision 0.28 no longer has.

    LeRobot 0.4.4's ``video_backend="pyav"`` decodes through ``torchvision.io.VideoReader``
    (removed from torchvision after 0.25, while the CPU torch 2.13 venv needs torchvision 0.28,
    and torchcodec does not load there). This is that reader's PyAV code path: ``seek`` to the
    key frame at or before a time, then iterate ``{"data": uint8 CHW tensor, "pts": seconds}``.
    Everything else (timestamps, episode offsets, frame selection within tolerance, [0, 1]
    float conversion) stays LeRobot's own ``decode_video_frames_torchvision``.
    """

    def __init__(self, path: str, stream: str = "video") -> None:
        self.container = av.open(path)
        self._stream = self.container.streams.video[0]

    def seek(self, time_s: float, keyframes_only: bool = False) -> _PyAVVideoReader:
        tb = self._stream.time_base
        self.container.seek(int(time_s / tb), stream=self._stream, any_frame=not keyframes_only, backward=True)
        return self

    def __iter__(self):
        for frame in self.container.decode(self._stream):
            rgb = torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1)
            yield {"data": rgb, "pts": float(frame.pts * frame.time_base)}


PYAV_SHIM = not hasattr(torchvision.io, "VideoReader")
if PYAV_SHIM:
    torchvision.io.VideoReader = _PyAVVideoReader
    torchvision.set_video_backend = lambda backend: None  # LeRobot sets "pyav"; the shim is PyAV

import lerobot  # noqa: E402
from lerobot.datasets.lerobot_dataset import LeRobotDataset  # noqa: E402

from edgeact.data.lerobot_export import export_lerobot  # noqa: E402
from edgeact.sim.record import record_episodes  # noqa: E402

# what `edgeact sim record --out EPS --episodes 2 --seconds 2 --size 96x128` records (its defaults)
RECORD = {"episodes": 2, "seconds": 2.0, "image_size": [96, 128], "seed": 0, "track": "oval", "fps": 30.0}
CAMERA = "observation.images.cam_front"
REPO_ID = "local/edgeact"
IMAGE_ITEMS = (0, 1, 59, 60, 61, 119)  # items whose frame is checked against the recorded JPEG


def read_csv(ep_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(actions, states, timestamps) straight from data.csv, without edgeact's loader."""
    with open(ep_dir / "data.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    actions = np.array([[float(r["steering"]), float(r["throttle"])] for r in rows], np.float32)
    state_cols = [k for k in rows[0] if k.startswith("state_")]
    if state_cols:
        states = np.array([[float(r[k]) for k in state_cols] for r in rows], np.float32)
    else:  # no state columns: the state at t is the command at t-1 (zeros at t = 0)
        states = np.concatenate([np.zeros((1, 2), np.float32), actions[:-1]])
    return actions, states, np.array([float(r["timestamp"]) for r in rows])


def main() -> int:
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        eps_root = Path(tmp) / "eps"
        record_episodes(eps_root, RECORD["episodes"], track=RECORD["track"], fps=RECORD["fps"],
                        image_size=tuple(RECORD["image_size"]), seconds=RECORD["seconds"], seed=RECORD["seed"])
        ds_root = export_lerobot(eps_root, Path(tmp) / "ds")  # the CLI's defaults (h264, crf 18)
        ep_dirs = sorted(p for p in eps_root.iterdir() if (p / "data.csv").exists())
        csvs = [read_csv(p) for p in ep_dirs]
        frames = [sorted((p / "frames").iterdir()) for p in ep_dirs]

        ds = LeRobotDataset(REPO_ID, root=ds_root, video_backend="pyav")
        n = len(ds)
        assert n == ds.num_frames == sum(len(c[0]) for c in csvs), (n, ds.num_frames)
        assert ds.num_episodes == len(ep_dirs)
        starts = np.concatenate([[0], np.cumsum([len(c[0]) for c in csvs])])
        actions, states, image_errors = [], [], {}
        for i in range(n):
            item = ds[i]
            e = int(item["episode_index"])
            k = int(item["frame_index"])
            assert starts[e] + k == i and int(item["index"]) == i, (i, e, k)
            a = item["action"].numpy()
            s = item["observation.state"].numpy()
            a_csv, s_csv, t_csv = csvs[e]
            assert a.dtype == np.float32 and s.dtype == np.float32
            np.testing.assert_array_equal(a, a_csv[k], err_msg=f"action of item {i}")
            np.testing.assert_array_equal(s, s_csv[k], err_msg=f"state of item {i}")
            assert abs(float(item["timestamp"]) - k / RECORD["fps"]) < 1e-6
            assert abs(float(item["timestamp"]) - t_csv[k]) < 1e-3, (float(item["timestamp"]), t_csv[k])
            assert item["task"] == "drive the rover along the road"
            actions.append(a.tolist())
            states.append(s.tolist())
            if i in IMAGE_ITEMS:
                img = item[CAMERA]  # float CHW in [0, 1]
                assert tuple(img.shape) == (3, *RECORD["image_size"]), img.shape
                got = (img.numpy().transpose(1, 2, 0) * 255).round()
                want = np.asarray(Image.open(frames[e][k]).convert("RGB"), np.float64)
                err = float(np.abs(got - want).mean())
                if k + 1 < len(frames[e]):
                    nxt = np.asarray(Image.open(frames[e][k + 1]).convert("RGB"), np.float64)
                    assert err < float(np.abs(got - nxt).mean()), f"item {i}: LeRobot decoded a neighbour frame"
                assert err < 6, f"item {i}: mean error {err:.2f} levels"
                image_errors[str(i)] = round(err, 3)

        meta = ds.meta
        features = {k: {"dtype": v["dtype"], "shape": list(v["shape"]), "names": v.get("names")}
                    for k, v in meta.features.items()}
        result = {
            "lerobot_version": lerobot.__version__,
            "repo_id": REPO_ID,
            "video_backend": "pyav",
            "torchvision_version": torchvision.__version__,
            "pyav_video_reader_shim": PYAV_SHIM,
            "record": RECORD,
            "codebase_version": meta.info["codebase_version"],
            "fps": meta.fps,
            "num_frames": ds.num_frames,
            "num_episodes": ds.num_episodes,
            "len": n,
            "features": features,
            "camera_keys": list(meta.camera_keys),
            "video_keys": list(meta.video_keys),
            "tasks": list(meta.tasks.index),
            "episode_lengths": [int(x) for x in meta.episodes["length"]],
            "episode_from_index": [int(x) for x in meta.episodes["dataset_from_index"]],
            "image_item_shape": [3, *RECORD["image_size"]],
            "image_mean_abs_error_levels": image_errors,
            "stats_keys": sorted(meta.stats),
            "actions": actions,
            "states": states,
        }
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(f"LeRobot {lerobot.__version__} loaded {n} frames, {ds.num_episodes} episodes at {meta.fps} fps; "
          f"features {sorted(features)}; frame errors {image_errors}; wrote {OUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
