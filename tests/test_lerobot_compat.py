"""edgeact against real LeRobot (0.4.x), without LeRobot installed.

The fixtures in tests/fixtures/lerobot/ come from ``scripts/make_lerobot_fixtures.py``, run in a
LeRobot virtualenv (docs/DEVELOPERS.md, "Checking against real LeRobot"):

- LeRobot -> edgeact: LeRobot's ACTPolicy (default config, one 360x640 camera, state 2,
  action 2) with weights from ``weight_recipe.py``, its config.json and processor files, and
  its pipeline output (preprocessor -> predict_action_chunk -> postprocessor) for three inputs.
  Here we rebuild the same weights, load that directory with edgeact and compare.
- edgeact -> LeRobot: what LeRobot said when it loaded a checkpoint edgeact wrote
  (edgeact_in_lerobot.json).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import edgeact
from edgeact.config import ACTConfig, rover_features

FIXTURES = Path(__file__).parent / "fixtures" / "lerobot"
LEROBOT_FILES = (
    "config.json",
    "policy_preprocessor.json",
    "policy_postprocessor.json",
    "policy_preprocessor_step_3_normalizer_processor.safetensors",
    "policy_postprocessor_step_0_unnormalizer_processor.safetensors",
)
TOLERANCE = 1e-4


def _load_recipe():
    spec = importlib.util.spec_from_file_location("lerobot_weight_recipe", FIXTURES / "weight_recipe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


recipe = _load_recipe()
KEYS = json.loads((FIXTURES / "keys.json").read_text())
CASES = json.loads((FIXTURES / "cases.json").read_text())
LEROBOT_CHUNKS = np.load(FIXTURES / "lerobot_chunks.npy")
N_CASES = len(CASES["states"])


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    out = [recipe.make_frame(seed, 360, 640) for seed in CASES["frame_seeds"]]
    got = [recipe.digest(f) for f in out]
    assert got == CASES["frame_sha256"], "weight_recipe.make_frame no longer draws the frames LeRobot saw"
    return out


@pytest.fixture(scope="module")
def lerobot_checkpoint(tmp_path_factory):
    """LeRobot's pretrained directory: its config and processor files, weights from the recipe."""
    from safetensors.numpy import save_file

    folder = tmp_path_factory.mktemp("lerobot_act")
    weights = recipe.make_state_dict([(k, s) for k, s in KEYS["keys"]], KEYS["recipe_seed"])
    random_part = {k: v for k, v in weights.items() if k != recipe.POS_ENC_KEY}
    assert recipe.digest(random_part) == KEYS["recipe_sha256"], (
        "weight_recipe.make_state_dict no longer gives the weights LeRobot ran (numpy random stream "
        "changed?); regenerate the fixtures with scripts/make_lerobot_fixtures.py"
    )
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    for name in LEROBOT_FILES:
        shutil.copy(FIXTURES / name, folder / name)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)  # ~200 MB of weights


@pytest.fixture(scope="module")
def backend(lerobot_checkpoint):
    return edgeact.load_policy(str(lerobot_checkpoint), backend="torch")


# -- LeRobot -> edgeact ------------------------------------------------------------------
@pytest.mark.parametrize("case", range(N_CASES))
def test_lerobot_checkpoint_gives_lerobots_actions(backend, frames, case):
    state = np.asarray(CASES["states"][case], np.float32)
    chunk = backend.predict_chunk(frames[case], state)
    want = LEROBOT_CHUNKS[case]
    assert chunk.shape == want.shape == (100, 2)
    diff = float(np.abs(chunk - want).max())
    print(f"LeRobot -> edgeact, input {case}: max abs diff {diff:.3g} (actions span {np.ptp(want):.3f})")
    assert diff <= TOLERANCE


def test_state_dict_keys_and_shapes_are_lerobots():
    from edgeact.model.act import ACTPolicy

    inputs, outputs = rover_features((360, 640))
    policy = ACTPolicy(ACTConfig(input_features=inputs, output_features=outputs, pretrained_backbone_weights=None))
    ours = {k: list(v.shape) for k, v in policy.state_dict().items()}
    lerobots = {k: list(s) for k, s in KEYS["keys"]}
    assert len(lerobots) == len(KEYS["keys"])
    assert sorted(set(lerobots) - set(ours)) == [], "keys LeRobot has and edgeact lacks"
    assert sorted(set(ours) - set(lerobots)) == [], "keys edgeact has and LeRobot lacks"
    assert {k: s for k, s in ours.items() if s != lerobots[k]} == {}, "shapes differ"
    # The one constant buffer: LeRobot's sinusoidal table.
    pos_enc = policy.state_dict()[recipe.POS_ENC_KEY].numpy()
    np.testing.assert_allclose(pos_enc, recipe.sinusoidal_table(*pos_enc.shape[1:])[None], atol=1e-6)


def test_stats_come_from_lerobots_processor_files(lerobot_checkpoint):
    from safetensors.numpy import load_file

    from edgeact.checkpoint import load_checkpoint

    stats = load_checkpoint(lerobot_checkpoint).stats
    saved = load_file(str(lerobot_checkpoint / LEROBOT_FILES[3]))
    for flat_key, value in saved.items():
        key, stat = flat_key.rsplit(".", 1)
        np.testing.assert_array_equal(stats[key][stat].reshape(value.shape), value)


# -- edgeact -> LeRobot ------------------------------------------------------------------
def test_lerobot_loads_edgeact_checkpoints():
    report = json.loads((FIXTURES / "edgeact_in_lerobot.json").read_text())
    print(f"edgeact -> LeRobot {report['lerobot_version']}: max abs diff {report['max_abs_diff']:.3g}")
    assert report["strict_load_ok"] is True, report.get("strict_load_error")
    assert report["missing_keys"] == [] and report["unexpected_keys"] == []
    assert report["config_keys_lerobot_writes_not_in_ours"] == []
    assert report["config_values_differing"] == []
    assert len(report["max_abs_diff_per_input"]) == N_CASES
    assert report["max_abs_diff"] <= TOLERANCE


def test_written_config_has_every_key_lerobots_has(tmp_path):
    lerobots = json.loads((FIXTURES / "config.json").read_text())
    inputs, outputs = rover_features((360, 640))
    ACTConfig(input_features=inputs, output_features=outputs).to_json(tmp_path / "config.json")
    ours = json.loads((tmp_path / "config.json").read_text())
    assert sorted(set(lerobots) - set(ours)) == []
    # Same config, same values (the device is where LeRobot ran: ours leaves it to LeRobot).
    assert {k: (ours[k], v) for k, v in lerobots.items() if k != "device" and ours[k] != v} == {}


def test_lerobot_config_round_trips(tmp_path):
    lerobots = json.loads((FIXTURES / "config.json").read_text())
    ACTConfig.from_json(FIXTURES / "config.json").to_json(tmp_path / "config.json")
    assert json.loads((tmp_path / "config.json").read_text()) == lerobots


# -- ONNX export -------------------------------------------------------------------------
def test_onnx_export_gives_lerobots_actions(lerobot_checkpoint, frames, tmp_path):
    """The exported bundle's model.onnx, run by ONNX Runtime, against LeRobot's output."""
    onnx_export = pytest.importorskip("edgeact.export.onnx_export")
    pytest.importorskip("onnxruntime")
    result = onnx_export.export_bundle(lerobot_checkpoint, tmp_path / "bundle", n_parity=1, log=lambda _: None)
    policy = edgeact.load_policy(str(result.bundle), backend="onnx", threads=1)
    diffs = []
    for case in range(N_CASES):
        chunk = policy.predict_chunk(frames[case], np.asarray(CASES["states"][case], np.float32))
        diffs.append(float(np.abs(chunk - LEROBOT_CHUNKS[case]).max()))
    print(f"LeRobot -> edgeact ONNX: max abs diff per input {', '.join(f'{d:.3g}' for d in diffs)}")
    policy.close()
    shutil.rmtree(result.bundle, ignore_errors=True)  # ~400 MB: weights and model.onnx
    assert max(diffs) <= TOLERANCE
