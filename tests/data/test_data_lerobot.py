from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from edgeact.cli import main  # noqa: E402
from edgeact.data.episodes import load_episodes  # noqa: E402
from edgeact.data.lerobot_import import import_lerobot  # noqa: E402
from edgeact.errors import DataError  # noqa: E402

KEY = "observation.images.cam_front"
FPS = 10
H, W = 32, 48
LENGTHS = [6, 4]


def grey(global_index: int) -> int:
    return 20 + 20 * global_index


def build_v3(root, version="v3.0"):
    """A tiny LeRobotDataset v3: two episodes in one parquet file and one mp4."""
    info = {
        "codebase_version": version,
        "robot_type": "rover",
        "total_episodes": len(LENGTHS),
        "total_frames": sum(LENGTHS),
        "fps": FPS,
        "chunks_size": 1000,
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
        "features": {
            KEY: {"dtype": "video", "shape": [3, H, W], "names": ["channels", "height", "width"],
                  "info": {"video.fps": FPS, "video.codec": "mp4v"}},
            "observation.state": {"dtype": "float32", "shape": [2], "names": ["steering", "throttle"]},
            "action": {"dtype": "float32", "shape": [2], "names": ["steering", "throttle"]},
            "timestamp": {"dtype": "float32", "shape": [1], "names": None},
            "frame_index": {"dtype": "int64", "shape": [1], "names": None},
            "episode_index": {"dtype": "int64", "shape": [1], "names": None},
            "index": {"dtype": "int64", "shape": [1], "names": None},
            "task_index": {"dtype": "int64", "shape": [1], "names": None},
        },
    }
    (root / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
    (root / "data" / "chunk-000").mkdir(parents=True)
    vdir = root / "videos" / KEY / "chunk-000"
    vdir.mkdir(parents=True)
    (root / "meta" / "info.json").write_text(json.dumps(info))
    columns = ("episode_index", "frame_index", "timestamp", "index", "task_index", "observation.state", "action")
    rows = {k: [] for k in columns}
    writer = cv2.VideoWriter(str(vdir / "file-000.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (W, H))
    expected = []
    g = 0
    ep_rows = {k: [] for k in ("episode_index", "length", "dataset_from_index", "dataset_to_index",
                               f"videos/{KEY}/chunk_index", f"videos/{KEY}/file_index",
                               f"videos/{KEY}/from_timestamp", f"videos/{KEY}/to_timestamp")}
    for e, n in enumerate(LENGTHS):
        ep_rows["episode_index"].append(e)
        ep_rows["length"].append(n)
        ep_rows["dataset_from_index"].append(g)
        ep_rows["dataset_to_index"].append(g + n)
        ep_rows[f"videos/{KEY}/chunk_index"].append(0)
        ep_rows[f"videos/{KEY}/file_index"].append(0)
        ep_rows[f"videos/{KEY}/from_timestamp"].append(g / FPS)
        ep_rows[f"videos/{KEY}/to_timestamp"].append((g + n) / FPS)
        acts = []
        for t in range(n):
            action = [round(0.1 * t - 0.2 * e, 3), round(0.5 - 0.05 * t, 3)]
            rows["episode_index"].append(e)
            rows["frame_index"].append(t)
            rows["timestamp"].append(t / FPS)
            rows["index"].append(g)
            rows["task_index"].append(0)
            rows["observation.state"].append([0.01 * g, -0.01 * g])
            rows["action"].append(action)
            writer.write(np.full((H, W, 3), grey(g), np.uint8))
            acts.append(action)
            g += 1
        expected.append(np.array(acts))
    writer.release()
    vec = pa.list_(pa.float32())
    table = pa.table({
        "episode_index": pa.array(rows["episode_index"], pa.int64()),
        "frame_index": pa.array(rows["frame_index"], pa.int64()),
        "timestamp": pa.array(rows["timestamp"], pa.float32()),
        "index": pa.array(rows["index"], pa.int64()),
        "task_index": pa.array(rows["task_index"], pa.int64()),
        "observation.state": pa.array(rows["observation.state"], vec),
        "action": pa.array(rows["action"], vec),
    })
    pq.write_table(table, root / "data" / "chunk-000" / "file-000.parquet")
    pq.write_table(pa.table(ep_rows), root / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    return expected


def test_import_round_trip(tmp_path):
    src = tmp_path / "lerobot_ds"
    expected = build_v3(src)
    messages = []
    paths = import_lerobot(src, tmp_path / "episodes", progress=messages.append)
    assert [p.name for p in paths] == ["episode_000", "episode_001"] and len(messages) == 2
    eps = load_episodes(tmp_path / "episodes", validate=True)
    g = 0
    for ep, acts, n in zip(eps, expected, LENGTHS):
        assert len(ep) == n and ep.fps == FPS and ep.image_size == (H, W)
        np.testing.assert_allclose(ep.actions, acts, atol=1e-6)
        assert ep.state_from_columns and ep.state_names == ("steering", "throttle")
        np.testing.assert_allclose(ep.states[:, 0], 0.01 * np.arange(g, g + n), atol=1e-6)
        np.testing.assert_allclose(ep.timestamps, np.arange(n) / FPS, atol=1e-6)
        for t in range(n):  # the frame at the right offset inside the shared video
            assert abs(float(ep.load_frame(t).mean()) - grey(g + t)) < 8
        g += n
    assert eps[1].meta["lerobot_episode_index"] == 1 and eps[1].meta["camera_key"] == KEY


def test_import_refuses_v2_and_incomplete(tmp_path):
    src = tmp_path / "old"
    build_v3(src, version="v2.1")
    with pytest.raises(DataError, match=r"v2\.1.*v3\.0.*convert"):
        import_lerobot(src, tmp_path / "out")
    with pytest.raises(DataError, match="meta/info.json"):
        import_lerobot(tmp_path / "nothing", tmp_path / "out")
    src3 = tmp_path / "v3"
    build_v3(src3)
    (src3 / "videos" / KEY / "chunk-000" / "file-000.mp4").unlink()
    with pytest.raises(DataError, match="file-000.mp4 is missing"):
        import_lerobot(src3, tmp_path / "out3")
    assert not (tmp_path / "out3").exists() or not any((tmp_path / "out3").iterdir())


def test_cli_import_and_stats(tmp_path, capsys):
    src = tmp_path / "lerobot_ds"
    build_v3(src)
    dst = tmp_path / "episodes"
    assert main(["data", "import-lerobot", str(src), str(dst)]) == 0
    assert "2 episode(s)" in capsys.readouterr().out
    plot = tmp_path / "hist.png"
    assert main(["data", "stats", str(dst), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "episodes     2" in out and "frames       10" in out and "steering" in out
    assert plot.stat().st_size > 1000
    # importing again into a folder that holds episodes is refused with a clear error
    assert main(["data", "import-lerobot", str(src), str(dst)]) == 2
    assert "already holds episodes" in capsys.readouterr().err
    assert main(["data", "stats", str(tmp_path / "missing")]) == 2
    assert "not a directory" in capsys.readouterr().err
