from __future__ import annotations

import json

import numpy as np
import pytest

from edgeact.errors import ConfigError
from edgeact.policy import PolicySpec
from edgeact.sim.evaluate import evaluate
from edgeact.sim.expert import ExpertBackend
from edgeact.sim.track import make_track

KEYS = {"laps", "mean_cross_track_m", "max_cross_track_m", "off_track_events"}


@pytest.mark.parametrize("replan_every", [1, 5])
def test_expert_backend_drives_laps(tmp_path, replan_every):
    backend = ExpertBackend(make_track("oval"), image_size=(24, 32), chunk_size=8)
    plot = tmp_path / "path.png"
    res = evaluate(backend, "oval", seconds=32.0, seed=7, replan_every=replan_every, plot=plot,
                   json_path=tmp_path / "r.json")
    assert res.laps >= 1.0 and res.off_track_events == 0
    assert res.mean_cross_track_m < 0.05 and res.max_cross_track_m < 0.2
    assert res.steps == 960 and res.inference_calls == 960 // replan_every
    assert res.achieved_rate_hz > 0 and res.latency_p99_ms >= res.latency_p50_ms >= 0
    data = res.to_json()
    assert set(data) >= KEYS
    json.dumps(data)
    assert json.loads((tmp_path / "r.json").read_text())["laps"] == pytest.approx(res.laps, abs=1e-5)
    assert plot.stat().st_size > 1000
    assert backend.sim is None  # unbound again


class RecordingBackend:
    """Returns chunk rows k = [0.01 * call + 0.001 * k, 0.4]; records what it is fed."""

    name = "recording"

    def __init__(self, image_size=(24, 32), chunk_size=4):
        self.spec = PolicySpec(("cam_front",), image_size, state_dim=2, action_dim=2, chunk_size=chunk_size, fps=20)
        self.calls = []

    def predict_chunk(self, image, state):
        self.spec.check_inputs(image, state)
        self.calls.append((image.shape, np.array(state)))
        c = len(self.calls) - 1
        return np.array([[0.01 * c + 0.001 * k, 0.4] for k in range(self.spec.chunk_size)], np.float32)

    def close(self):
        pass


def test_resize_state_convention_and_chunk_execution():
    b = RecordingBackend(image_size=(24, 32), chunk_size=4)
    res = evaluate(b, "oval", seconds=0.6, replan_every=3, render_size=(48, 64))
    assert res.steps == 12 and len(b.calls) == 4
    assert all(shape == (24, 32, 3) for shape, _ in b.calls)  # resized to the model's input
    np.testing.assert_array_equal(b.calls[0][1], [0.0, 0.0])  # zeros at the start
    for c in range(1, 4):
        # state = the command executed at the previous step: row 2 of the previous chunk
        np.testing.assert_allclose(b.calls[c][1], [0.01 * (c - 1) + 0.002, 0.4], atol=1e-6)
    assert res.fps == 20 and res.seconds == pytest.approx(0.6)


def test_bad_replan_every():
    with pytest.raises(ConfigError, match="replan-every"):
        evaluate(RecordingBackend(chunk_size=4), "oval", seconds=1, replan_every=5)
    with pytest.raises(ConfigError, match="unknown track"):
        evaluate(RecordingBackend(), "nurburgring", seconds=1)
