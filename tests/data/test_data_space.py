"""The disk a recording takes: estimated from the frame size, or measured on the episodes there."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from edgeact.data.episodes import write_episode
from edgeact.data.space import free_bytes, recording_rate


def test_the_estimate_scales_with_frame_size_and_rate():
    small, big = recording_rate(30, (180, 320)), recording_rate(30, (360, 640))
    assert 3.0 < big.bytes_per_minute / small.bytes_per_minute < 4.5  # whole blocks per file round small ones up
    assert recording_rate(15, (360, 640)).bytes_per_minute == pytest.approx(big.bytes_per_minute / 2)
    assert 80e6 < big.bytes_per_minute < 140e6 and "estimated for 360x640" in big.basis


def test_measured_on_the_newest_episodes(tmp_path):
    assert "estimated" in recording_rate(30, root=tmp_path).basis  # an empty folder: the estimate
    frames = np.zeros((20, 90, 160, 3), np.uint8)  # flat frames: tiny JPEGs, one block each
    write_episode(tmp_path / "episode_000", frames, np.zeros((20, 2)), fps=30)
    rate = recording_rate(30, root=tmp_path)
    assert "measured on its 1 newest" in rate.basis
    per_step = rate.bytes_per_minute / (30 * 60)
    assert 4096 <= per_step < 3 * 4096  # one block a frame, plus data.csv and meta.json over 20 steps


def test_free_space_of_a_folder_not_made_yet(tmp_path):
    assert abs(free_bytes(tmp_path / "not" / "yet") - shutil.disk_usage(tmp_path).free) < 64e6
