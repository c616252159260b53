from __future__ import annotations

import numpy as np

from edgeact.data.episodes import load_episodes, write_episode
from edgeact.data.stats import compute_stats, format_summary, summarize


def _flat_episodes(tmp_path):
    colour = np.array([51, 102, 204], np.uint8)
    frames = [np.broadcast_to(colour, (16, 20, 3)).copy() for _ in range(6)]
    a0 = np.array([[0.1, 0.2], [0.3, 0.4], [-0.5, 0.6]])
    a1 = np.array([[0.0, 1.0], [1.0, -1.0], [0.2, 0.0]])
    write_episode(tmp_path / "e" / "episode_000", frames[:3], a0, fps=10)
    write_episode(tmp_path / "e" / "episode_001", frames[3:], a1, fps=10)
    return load_episodes(tmp_path / "e"), np.concatenate([a0, a1])


def test_stats_values_and_layout(tmp_path):
    eps, actions = _flat_episodes(tmp_path)
    stats = compute_stats(eps)
    assert set(stats) == {"observation.state", "action", "observation.images.cam_front"}
    act = stats["action"]
    for name, fn in (("mean", np.mean), ("std", np.std), ("min", np.min), ("max", np.max)):
        assert act[name].dtype == np.float32 and act[name].shape == (2,)
        np.testing.assert_allclose(act[name], fn(actions, axis=0), atol=1e-6)
    states = np.concatenate([np.vstack([[0, 0], actions[:2]]), np.vstack([[0, 0], actions[3:5]])])
    np.testing.assert_allclose(stats["observation.state"]["mean"], states.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(stats["observation.state"]["std"], states.std(axis=0), atol=1e-6)
    img = stats["observation.images.cam_front"]
    for name in ("mean", "std", "min", "max"):
        assert img[name].shape == (3, 1, 1) and img[name].dtype == np.float32
    np.testing.assert_allclose(img["mean"].ravel(), [0.2, 0.4, 0.8], atol=3 / 255)
    assert float(img["std"].max()) < 0.02


def test_summary(tmp_path):
    eps, actions = _flat_episodes(tmp_path)
    s = summarize(tmp_path / "e")
    assert s["episodes"] == 2 and s["frames"] == 6 and s["fps"] == 10
    assert s["image_size"] == [16, 20] and abs(s["duration_s"] - 0.6) < 1e-9
    assert abs(s["actions"]["steering"]["max"] - 1.0) < 1e-6
    assert abs(s["actions"]["throttle"]["mean"] - actions[:, 1].mean()) < 1e-6
    text = format_summary(s)
    assert "steering" in text and "16x20" in text
