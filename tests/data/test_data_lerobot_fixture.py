"""edgeact's LeRobot export matches what real LeRobot loaded from it (no LeRobot needed here).

``tests/fixtures/lerobot/dataset_export_loaded.json`` is written by
``scripts/check_lerobot_dataset_export.py`` in a LeRobot 0.4.x virtualenv: it exports the
seeded simulator episodes below, loads them with ``LeRobotDataset`` and records what it saw
(after checking every item against the episodes' data.csv). Here the same episodes are
recorded and exported again, and the dataset must still say what LeRobot read: the same
features, counts, fps, episodes and tasks, and bit-identical actions and states.
"""

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from edgeact.data.lerobot_export import export_lerobot
from edgeact.sim.record import record_episodes

FIXTURE = Path(__file__).parents[1] / "fixtures" / "lerobot" / "dataset_export_loaded.json"
LOADED = json.loads(FIXTURE.read_text())


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    rec = LOADED["record"]
    root = tmp_path_factory.mktemp("lerobot_fixture")
    record_episodes(root / "eps", rec["episodes"], track=rec["track"], fps=rec["fps"],
                    image_size=tuple(rec["image_size"]), seconds=rec["seconds"], seed=rec["seed"])
    return export_lerobot(root / "eps", root / "ds")


def test_fixture_is_from_lerobot_0_4():
    assert LOADED["lerobot_version"].startswith("0.4.")
    assert LOADED["len"] == LOADED["num_frames"] == len(LOADED["actions"]) == len(LOADED["states"])
    assert max(LOADED["image_mean_abs_error_levels"].values()) < 6


def test_metadata_matches_what_lerobot_loaded(dataset):
    info = json.loads((dataset / "meta" / "info.json").read_text())
    assert info["codebase_version"] == LOADED["codebase_version"]
    assert info["fps"] == LOADED["fps"]
    assert info["total_frames"] == LOADED["num_frames"]
    assert info["total_episodes"] == LOADED["num_episodes"]
    features = {k: {"dtype": v["dtype"], "shape": list(v["shape"]), "names": v.get("names")}
                for k, v in info["features"].items()}
    assert features == LOADED["features"]
    assert [k for k, v in features.items() if v["dtype"] == "video"] == LOADED["video_keys"]
    eps = pq.read_table(dataset / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pylist()
    assert [e["length"] for e in eps] == LOADED["episode_lengths"]
    assert [e["dataset_from_index"] for e in eps] == LOADED["episode_from_index"]
    tasks = pq.read_table(dataset / "meta" / "tasks.parquet")
    assert tasks["__index_level_0__"].to_pylist() == LOADED["tasks"]
    assert sorted(json.loads((dataset / "meta" / "stats.json").read_text())) == LOADED["stats_keys"]


def test_actions_and_states_are_what_lerobot_read(dataset):
    data = pq.read_table(dataset / "data" / "chunk-000" / "file-000.parquet")
    assert data.num_rows == LOADED["num_frames"]
    actions = np.stack(data["action"].to_numpy(zero_copy_only=False))
    states = np.stack(data["observation.state"].to_numpy(zero_copy_only=False))
    assert actions.dtype == states.dtype == np.float32
    # LeRobot's float32 values, written to JSON as doubles, come back bit for bit
    np.testing.assert_array_equal(actions, np.asarray(LOADED["actions"], np.float32))
    np.testing.assert_array_equal(states, np.asarray(LOADED["states"], np.float32))
    assert actions.std(0).min() > 0  # a real drive, not a constant
