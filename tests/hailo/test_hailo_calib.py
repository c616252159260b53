"""`edgeact hailo calib`: RGB raw-pixel NHWC float32 frames through fit_frame, spread over steering."""

from __future__ import annotations

import numpy as np
import pytest

from edgeact.backends.hailo_part import read_part
from edgeact.cli import main
from edgeact.errors import DataError
from edgeact.frames import fit_frame
from edgeact.hailo.calib import build_calibration, select_frames
from factories import write_episodes


def test_selection_covers_rare_steering_instead_of_the_first_frames():
    rng = np.random.default_rng(0)
    steering = np.concatenate([np.zeros(900), rng.uniform(-1, 1, 100)])  # mostly straight, a few turns at the end
    index, edges, which = select_frames(steering, 100)
    assert len(index) == 100 and len(set(index)) == 100
    turns = np.sum(np.abs(steering[index]) > 0.3)
    assert turns > 50  # the first 100 frames hold none
    assert index.max() > 900


def test_frames_are_raw_rgb_pixels_at_the_npu_size(hailo_exported, episodes):
    bundle, _, _ = hailo_exported
    calib = build_calibration(bundle, episodes, 32, log=lambda s: None)
    ((layer, data),) = calib.arrays.items()
    h, w = read_part(bundle).manifest["policy"]["image_size"]
    assert layer == "edgeact_act/input_layer1"
    assert data.shape == (32, h, w, 3) and data.dtype == np.float32 and data.max() > 1 and data.min() >= 0
    from edgeact.export.calibration import read_episodes

    first = read_episodes(episodes)[0]
    fitted = fit_frame(first.load_frame(0), (h, w)).astype(np.float32)
    assert any(np.array_equal(fitted, frame) for frame in data)  # RGB via fit_frame, not BGR
    assert calib.coverage.episodes_used == calib.coverage.episodes_total == 3
    assert sum(calib.coverage.steering_counts) == 32


def test_full_mode_writes_an_npz_keyed_by_input_layer(hailo_exported):
    _, _, calib = hailo_exported
    data = np.load(calib["full"])
    assert sorted(data.files) == ["edgeact_act/input_layer1", "edgeact_act/input_layer2"]
    assert data["edgeact_act/input_layer2"].shape[1:3] == (1, 1)


def test_too_few_frames(hailo_exported, tmp_path):
    bundle, _, _ = hailo_exported
    small = write_episodes(tmp_path / "eps", n_episodes=1, length=10)
    with pytest.raises(DataError, match="at least 32"):
        build_calibration(bundle, small, 32, log=lambda s: None)
    with pytest.raises(DataError, match="too few"):
        build_calibration(bundle, small, 8, log=lambda s: None)


def test_cli(hailo_exported, episodes, tmp_path, capsys):
    bundle, _, _ = hailo_exported
    out = tmp_path / "calib.npy"
    assert main(["hailo", "calib", str(bundle), "--episodes", str(episodes), "--frames", "32", "--out", str(out)]) == 0
    assert np.load(out).shape[0] == 32 and out.with_suffix(".json").is_file()
    assert "steering histogram" in capsys.readouterr().out
    assert main(["hailo", "calib", str(bundle), "--episodes", str(tmp_path / "nope"), "--out", str(out)]) == 2
