import json
import shutil

import numpy as np
import pytest
import torch

import edgeact
from edgeact.checkpoint import build_policy, load_checkpoint, save_pretrained
from edgeact.errors import BackendError, CheckpointError, InputError
from edgeact.model.act import ACTPolicy
from factories import rover_stats, tiny_config

FRAME = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
STATE = np.array([0.3, -0.5], np.float32)


def reference_chunk(policy: ACTPolicy, stats, frame=FRAME, state=STATE) -> np.ndarray:
    """The pipeline written out by hand: [0,1] image, MEAN_STD in, ACT, MEAN_STD out."""
    img = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255
    s_img = stats["observation.images.cam_front"]
    img = (img - torch.from_numpy(s_img["mean"])) / (torch.from_numpy(s_img["std"]) + 1e-8)
    s = stats["observation.state"]
    st = (torch.from_numpy(state)[None] - torch.from_numpy(s["mean"])) / (torch.from_numpy(s["std"]) + 1e-8)
    with torch.no_grad():
        out = policy.eval()([img], st)[0].numpy()
    return out * stats["action"]["std"] + stats["action"]["mean"]


def test_save_load_round_trip_matches_hand_written_pipeline(tiny_checkpoint):
    ckpt = load_checkpoint(tiny_checkpoint)
    assert ckpt.fps == 20 and "processor" in ckpt.stats_source
    backend = edgeact.load_policy(str(tiny_checkpoint))
    chunk = backend.predict_chunk(FRAME, STATE)
    assert chunk.shape == (10, 2) and chunk.dtype == np.float32
    expected = reference_chunk(build_policy(ckpt), rover_stats())
    np.testing.assert_allclose(chunk, expected, atol=1e-5)


def test_legacy_stats_buffers_in_state_dict(tmp_path, tiny_checkpoint):
    """LeRobot < 0.4 kept stats as normalize_inputs.buffer_* entries in the weights."""
    ckpt = load_checkpoint(tiny_checkpoint)
    state = dict(ckpt.state_dict)
    for key, stats in rover_stats().items():
        buffer = "buffer_" + key.replace(".", "_")
        prefixes = ["unnormalize_outputs", "normalize_targets"] if key == "action" else ["normalize_inputs"]
        for prefix in prefixes:
            for stat in ("mean", "std"):
                state[f"{prefix}.{buffer}.{stat}"] = torch.from_numpy(stats[stat])
    torch.save({"model_state_dict": state}, tmp_path / "best_model.pth")
    shutil.copy(tiny_checkpoint / "config.json", tmp_path / "config.json")
    legacy = load_checkpoint(tmp_path / "best_model.pth")
    assert "state dict" in legacy.stats_source
    got = edgeact.load_policy(str(tmp_path / "best_model.pth")).predict_chunk(FRAME, STATE)
    want = edgeact.load_policy(str(tiny_checkpoint)).predict_chunk(FRAME, STATE)
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_pth_without_config_says_how_to_fix(tmp_path, tiny_checkpoint):
    torch.save({"model_state_dict": load_checkpoint(tiny_checkpoint).state_dict}, tmp_path / "model.pth")
    with pytest.raises(CheckpointError, match="--config"):
        load_checkpoint(tmp_path / "model.pth")


@pytest.mark.parametrize("content", [b"PK\x03\x04 cut short", b"<html>404 Not Found</html>", b""])
def test_corrupt_pth_is_not_a_pytorch_file(tmp_path, content):
    (tmp_path / "model.pth").write_bytes(content)  # no config beside it either: the file is the problem
    with pytest.raises(CheckpointError, match="is not a PyTorch file"):
        load_checkpoint(tmp_path / "model.pth")


def test_a_normalized_feature_without_stats_is_refused(tmp_path, tiny_checkpoint):
    state = {"model_state_dict": load_checkpoint(tiny_checkpoint).state_dict}
    torch.save(state, tmp_path / "model.pth")
    partial = {k: {s: v.tolist() for s, v in d.items()} for k, d in rover_stats().items() if k != "action"}
    (tmp_path / "stats.json").write_text(json.dumps(partial))
    with pytest.raises(CheckpointError, match=r"action needs \['mean', 'std'\].*--stats"):
        load_checkpoint(tmp_path / "model.pth", tiny_checkpoint / "config.json", tmp_path / "stats.json")


def test_run_takes_the_config_of_a_weights_only_pth(tmp_path, tiny_checkpoint, episode_dir):
    from edgeact.commands import run as run_cmd

    torch.save({"model_state_dict": load_checkpoint(tiny_checkpoint).state_dict}, tmp_path / "model.pth")
    shutil.copy(tiny_checkpoint / "policy_preprocessor.json", tmp_path)
    for f in tiny_checkpoint.glob("policy_*processor*"):
        shutil.copy(f, tmp_path)
    argv = ["--model", str(tmp_path / "model.pth"), "--camera", f"replay:{episode_dir}", "--actuator", "none",
            "--duration", "0.2", "--no-keys", "--no-realtime", "--status", "0", "--no-plot"]
    assert run_cmd.main(argv) == 2  # no config.json beside it: says --config
    assert run_cmd.main([*argv, "--config", str(tiny_checkpoint / "config.json")]) == 0


def test_pth_with_explicit_config_and_stats_json(tmp_path, tiny_checkpoint):
    torch.save({"model_state_dict": load_checkpoint(tiny_checkpoint).state_dict}, tmp_path / "model.pth")
    stats_json = {k: {s: v.tolist() for s, v in d.items()} for k, d in rover_stats().items()}
    (tmp_path / "stats.json").write_text(json.dumps(stats_json))
    backend = edgeact.load_policy(str(tmp_path / "model.pth"), config_path=tiny_checkpoint / "config.json",
                                  stats_path=tmp_path / "stats.json")
    np.testing.assert_allclose(backend.predict_chunk(FRAME, STATE),
                               edgeact.load_policy(str(tiny_checkpoint)).predict_chunk(FRAME, STATE), atol=1e-6)


def test_missing_and_unexpected_keys_are_named(tmp_path, tiny_checkpoint):
    from safetensors.torch import load_file, save_file

    state = load_file(str(tiny_checkpoint / "model.safetensors"))
    state.pop("model.action_head.weight")
    state["model.extra_head.weight"] = torch.zeros(1)
    save_file(state, str(tiny_checkpoint / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"model\.action_head\.weight.*model\.extra_head\.weight"):
        edgeact.load_policy(str(tiny_checkpoint))


def test_config_that_does_not_fit_the_weights(tiny_checkpoint):
    config = json.loads((tiny_checkpoint / "config.json").read_text())
    config["dim_feedforward"] = 128
    (tiny_checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="shapes differ"):
        edgeact.load_policy(str(tiny_checkpoint))


def test_corrupt_weights_file(tiny_checkpoint):
    (tiny_checkpoint / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="safetensors"):
        load_checkpoint(tiny_checkpoint)


def test_missing_path_and_unknown_backend(tmp_path, tiny_checkpoint):
    with pytest.raises(CheckpointError, match="not found"):
        edgeact.load_policy(str(tmp_path / "nothing"))
    with pytest.raises(BackendError, match="unknown backend 'tpu'"):
        edgeact.load_policy(str(tiny_checkpoint), backend="tpu")


def test_missing_stats_are_refused(tiny_checkpoint):
    for f in tiny_checkpoint.glob("policy_*"):
        f.unlink()
    with pytest.raises(CheckpointError, match="no normalization stats"):
        load_checkpoint(tiny_checkpoint)


@pytest.mark.parametrize(
    "frame, message",
    [
        (np.zeros((360, 640, 3), np.uint8), r"does not match the model's input \(64, 96, 3\)"),
        (np.zeros((64, 96, 3), np.float32), "uint8"),
        (np.zeros((64, 96), np.uint8), "shape"),
    ],
)
def test_bad_frames_are_named(tiny_checkpoint, frame, message):
    backend = edgeact.load_policy(str(tiny_checkpoint))
    with pytest.raises(InputError, match=message):
        backend.predict_chunk(frame, STATE)


def test_bad_state(tiny_checkpoint):
    backend = edgeact.load_policy(str(tiny_checkpoint))
    with pytest.raises(InputError, match="expects 2"):
        backend.predict_chunk(FRAME, np.zeros(3, np.float32))
    with pytest.raises(InputError, match="NaN"):
        backend.predict_chunk(FRAME, np.array([np.nan, 0], np.float32))


def test_min_max_and_identity_normalization(tmp_path):
    torch.manual_seed(0)
    config = tiny_config(normalization_mapping={"VISUAL": "IDENTITY", "STATE": "MIN_MAX", "ACTION": "MIN_MAX"})
    policy = ACTPolicy(config)
    stats = rover_stats()
    path = save_pretrained(policy, stats, tmp_path / "mm")
    chunk = edgeact.load_policy(str(path)).predict_chunk(FRAME, STATE)
    s, a = stats["observation.state"], stats["action"]
    img = torch.from_numpy(FRAME).permute(2, 0, 1)[None].float() / 255
    st = 2 * (torch.from_numpy(STATE)[None] - torch.from_numpy(s["min"])) / torch.from_numpy(s["max"] - s["min"]) - 1
    with torch.no_grad():
        raw = policy.eval()([img], st)[0].numpy()
    np.testing.assert_allclose(chunk, (raw + 1) / 2 * (a["max"] - a["min"]) + a["min"], atol=1e-5)


def test_save_is_atomic_and_replaces(tmp_path, tiny_checkpoint):
    policy = build_policy(load_checkpoint(tiny_checkpoint))
    out = save_pretrained(policy, rover_stats(), tmp_path / "again")
    save_pretrained(policy, rover_stats(), out)  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    assert (out / "model.safetensors").is_file()


def test_inspect_command(tiny_checkpoint, capsys):
    from edgeact.cli import main

    assert main(["inspect", str(tiny_checkpoint)]) == 0
    out = capsys.readouterr().out
    assert "GFLOP" in out and "observation.images.cam_front" in out and "M used at inference" in out
    assert main(["inspect", str(tiny_checkpoint / "nope")]) == 2
