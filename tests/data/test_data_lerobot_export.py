"""LeRobotDataset v3 export: import(export(D)) == D, frames within video tolerance."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from edgeact.cli import main
from edgeact.data.episodes import load_episodes
from edgeact.data.lerobot_export import export_lerobot
from edgeact.data.lerobot_import import import_lerobot
from edgeact.errors import DataError
from edgeact.sim.record import record_episodes


@pytest.fixture(scope="module")
def episodes(tmp_path_factory):
    root = tmp_path_factory.mktemp("episodes")
    record_episodes(root, 3, image_size=(48, 64), seconds=0.7, seed=2, track=["oval", "hairpin-rev"])
    return root


@pytest.mark.parametrize("codec", ["h264", "av1"])
def test_round_trip_is_lossless_up_to_video(episodes, tmp_path, codec):
    dataset = export_lerobot(episodes, tmp_path / "ds", codec=codec)
    back = load_episodes(import_lerobot(dataset, tmp_path / "back")[0].parent)
    orig = load_episodes(episodes)
    assert len(back) == len(orig)
    for a, b in zip(orig, back):
        assert b.fps == a.fps and b.image_size == a.image_size and b.state_names == a.state_names
        np.testing.assert_array_equal(b.actions, a.actions)
        np.testing.assert_array_equal(b.states, a.states)
        np.testing.assert_allclose(b.timestamps, a.timestamps, atol=1e-6)
        for k in range(len(a)):
            err = np.abs(b.load_frame(k).astype(np.int16) - a.load_frame(k).astype(np.int16))
            # within video tolerance, and the right frame, not a neighbour
            assert err.mean() < 6, f"{a.name} frame {k}: mean error {err.mean():.1f} levels"
            if k + 1 < len(a):
                other = np.abs(b.load_frame(k).astype(np.int16) - a.load_frame(k + 1).astype(np.int16)).mean()
                assert err.mean() < other


def test_layout_is_lerobot_v3(episodes, tmp_path):
    dataset = export_lerobot(episodes, tmp_path / "ds")
    info = json.loads((dataset / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["total_episodes"] == 3 and info["fps"] == 30
    assert info["features"]["action"]["names"] == ["steering", "throttle"]
    assert info["features"]["observation.images.cam_front"]["shape"] == [48, 64, 3]
    data = pq.read_table(dataset / "data" / "chunk-000" / "file-000.parquet")
    assert data.num_rows == info["total_frames"] and data["index"].to_pylist() == list(range(data.num_rows))
    eps = pq.read_table(dataset / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pylist()
    assert [e["dataset_from_index"] for e in eps] == [0, 21, 42]
    assert eps[0]["tasks"] == ["drive the rover along the road"]
    tasks = pq.read_table(dataset / "meta" / "tasks.parquet")
    assert tasks["__index_level_0__"].to_pylist() == ["drive the rover along the road"]
    assert b"pandas" in tasks.schema.metadata  # pandas (LeRobot) reads the task text as the index
    stats = json.loads((dataset / "meta" / "stats.json").read_text())
    assert np.asarray(stats["observation.images.cam_front"]["mean"]).shape == (3, 1, 1)


def test_export_refuses_a_non_empty_folder_and_cli_works(episodes, tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(DataError, match="not empty"):
        export_lerobot(episodes, tmp_path / "full")
    assert main(["data", "export-lerobot", str(episodes), "--out", str(tmp_path / "cli")]) == 0
    assert "lerobot-train" in capsys.readouterr().out
    assert (tmp_path / "cli" / "videos" / "observation.images.cam_front" / "chunk-000" / "file-000.mp4").is_file()
