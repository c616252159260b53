"""Write tests/fixtures/lerobot/: LeRobot's own ACT outputs for edgeact to match, both ways.

Run it with the Python of a LeRobot 0.4.x virtualenv (see docs/DEVELOPERS.md,
"Checking against real LeRobot"), from anywhere:

    /opt/lerobot-venv/bin/python scripts/make_lerobot_fixtures.py

LeRobot -> edgeact: LeRobot's ACTPolicy (default config, one 360x640 camera, state 2,
action 2) gets weights from ``tests/fixtures/lerobot/weight_recipe.py`` (pure numpy, so the
test rebuilds them without LeRobot). We commit its state-dict keys (keys.json), the
config.json and processor files LeRobot writes (with non-trivial stats), three inputs and
LeRobot's pipeline output for each (preprocessor -> predict_action_chunk -> postprocessor).

edgeact -> LeRobot: a random edgeact checkpoint written by ``edgeact.checkpoint.save_pretrained``
is loaded by LeRobot with strict key checking and its processor pipelines; the key check
and LeRobot-vs-edgeact difference go to edgeact_in_lerobot.json.
"""

from __future__ import annotations

import importlib.util
import json
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "fixtures" / "lerobot"

import lerobot
from lerobot.configs.types import FeatureType, PolicyFeature
from lerobot.policies.act.configuration_act import ACTConfig
from lerobot.policies.act.modeling_act import ACTPolicy
from lerobot.policies.factory import make_pre_post_processors
from lerobot.processor import PolicyProcessorPipeline
from lerobot.processor.converters import (
    batch_to_transition,
    policy_action_to_transition,
    transition_to_batch,
    transition_to_policy_action,
)

IMAGE_KEY = "observation.images.cam_front"
H, W = 360, 640
WEIGHT_SEED = 20240601  # LeRobot -> edgeact weights
REVERSE_SEED = 7  # edgeact -> LeRobot weights
FRAME_SEEDS = (11, 12, 13)
STATES = [[0.25, -1.3], [-0.6, 2.4], [0.05, 0.4]]
DEFAULT_BACKBONE_WEIGHTS = "ResNet18_Weights.IMAGENET1K_V1"
FIXTURE_FILES = (
    "config.json",
    "policy_preprocessor.json",
    "policy_postprocessor.json",
    "policy_preprocessor_step_3_normalizer_processor.safetensors",
    "policy_postprocessor_step_0_unnormalizer_processor.safetensors",
)


def load_recipe():
    spec = importlib.util.spec_from_file_location("weight_recipe", OUT / "weight_recipe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


recipe = load_recipe()


def lerobot_stats() -> dict[str, dict[str, torch.Tensor]]:
    """Non-trivial dataset stats (image mean/std deliberately not ImageNet's)."""
    t = torch.tensor
    return {
        "observation.state": {"mean": t([0.12, -0.35]), "std": t([0.45, 1.8]),
                              "min": t([-0.9, -4.2]), "max": t([1.1, 3.9])},
        IMAGE_KEY: {"mean": t([0.41, 0.37, 0.33]).reshape(3, 1, 1), "std": t([0.27, 0.24, 0.26]).reshape(3, 1, 1),
                    "min": torch.zeros(3, 1, 1), "max": torch.ones(3, 1, 1)},
        "action": {"mean": t([0.05, 0.42]), "std": t([0.31, 0.22]),
                   "min": t([-0.8, -0.1]), "max": t([0.9, 1.0])},
    }


def lerobot_config() -> ACTConfig:
    return ACTConfig(
        input_features={"observation.state": PolicyFeature(type=FeatureType.STATE, shape=(2,)),
                        IMAGE_KEY: PolicyFeature(type=FeatureType.VISUAL, shape=(3, H, W))},
        output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(2,))},
        pretrained_backbone_weights=None,  # building the model must not download torchvision weights
        device="cpu",
    )


def lerobot_observation(frame: np.ndarray, state) -> dict[str, torch.Tensor]:
    """The raw observation LeRobot's preprocessor takes: float32 [0,1] CHW of the same uint8 pixels."""
    image = torch.from_numpy(frame).permute(2, 0, 1).contiguous().to(torch.float32) / 255.0
    return {"observation.state": torch.tensor(state, dtype=torch.float32), IMAGE_KEY: image}


def run_lerobot(policy, pre, post, frame, state) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        normalized = policy.predict_action_chunk(pre(lerobot_observation(frame, state)))
        chunk = post(normalized)
    return normalized[0].numpy(), chunk[0].numpy()


def load_pipelines(folder: Path):
    pre = PolicyProcessorPipeline.from_pretrained(
        folder, config_filename="policy_preprocessor.json",
        to_transition=batch_to_transition, to_output=transition_to_batch)
    post = PolicyProcessorPipeline.from_pretrained(
        folder, config_filename="policy_postprocessor.json",
        to_transition=policy_action_to_transition, to_output=transition_to_policy_action)
    return pre, post


# --------------------------------------------------------------------------------------
def lerobot_to_edgeact(frames: list[np.ndarray]) -> dict:
    torch.manual_seed(0)
    policy = ACTPolicy(lerobot_config()).eval()
    reference = policy.state_dict()
    keys = [[k, list(v.shape)] for k, v in reference.items()]
    assert all(v.dtype == torch.float32 for v in reference.values())

    weights = recipe.make_state_dict([(k, s) for k, s in keys], WEIGHT_SEED)
    pos_enc = reference[recipe.POS_ENC_KEY].numpy()
    assert np.array_equal(weights[recipe.POS_ENC_KEY], pos_enc), "recipe's sinusoidal table differs from LeRobot's"
    policy.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)
    random_part = {k: v for k, v in weights.items() if k != recipe.POS_ENC_KEY}

    stats = lerobot_stats()
    pre, post = make_pre_post_processors(policy.config, dataset_stats=stats)
    outputs = [run_lerobot(policy, pre, post, f, s) for f, s in zip(frames, STATES)]

    # Activation sanity, so that the fixture exercises the whole network.
    with torch.no_grad():
        batch = pre(lerobot_observation(frames[0], STATES[0]))
        feat = policy.model.backbone(batch[IMAGE_KEY])["feature_map"]
    print(f"backbone feature map {tuple(feat.shape)} std {feat.std():.3f} max {feat.abs().max():.3f}")
    for i, (norm, chunk) in enumerate(outputs):
        print(f"input {i}: normalized chunk std {norm.std():.3f} range [{norm.min():.3f}, {norm.max():.3f}]; "
              f"real units [{chunk.min():.3f}, {chunk.max():.3f}]")
    spread = max(np.abs(outputs[i][0] - outputs[0][0]).max() for i in range(1, len(outputs)))
    print(f"max difference between inputs' normalized chunks: {spread:.3f}")
    assert spread > 0.05, "outputs barely depend on the input; the fixture would not catch much"

    # A LeRobot training run with the default config records the pretrained backbone; write
    # that (the weights we give make the value irrelevant to the numbers).
    policy.config.pretrained_backbone_weights = DEFAULT_BACKBONE_WEIGHTS
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        policy.save_pretrained(tmp)
        pre.save_pretrained(tmp)
        post.save_pretrained(tmp)
        written = sorted(p.name for p in tmp.iterdir())
        assert set(FIXTURE_FILES) <= set(written), written
        for name in FIXTURE_FILES:
            shutil.copy(tmp / name, OUT / name)
        # the saved weights are ours, unchanged
        from safetensors.numpy import load_file

        saved = load_file(str(tmp / "model.safetensors"))
        assert set(saved) == set(weights) and all(np.array_equal(saved[k], weights[k]) for k in weights)
        # and LeRobot's own reload gives the same numbers (with the pretrained-weights name set
        # back to None: the weights come from the file either way, and nothing is downloaded)
        config = json.loads((tmp / "config.json").read_text())
        config["pretrained_backbone_weights"] = None
        (tmp / "config.json").write_text(json.dumps(config, indent=4))
        reloaded = ACTPolicy.from_pretrained(tmp, strict=True).eval()
        pre2, post2 = load_pipelines(tmp)
        again = run_lerobot(reloaded, pre2, post2, frames[0], STATES[0])[1]
        assert np.array_equal(again, outputs[0][1])

    header = json.dumps({
        "about": "LeRobot ACTPolicy.state_dict() keys and shapes (float32), default ACTConfig, "
                 f"one {H}x{W} camera {IMAGE_KEY}, state 2, action 2; weights of the fixture: "
                 "weight_recipe.make_state_dict(keys, recipe_seed), whose non-constant entries hash to recipe_sha256",
        "lerobot_version": lerobot.__version__,
        "recipe_seed": WEIGHT_SEED,
        "recipe_sha256": recipe.digest(random_part),
    }, indent=1)
    rows = ",\n".join("  " + json.dumps(row) for row in keys)  # one key per line
    (OUT / "keys.json").write_text(header[:-2] + ',\n "keys": [\n' + rows + "\n ]\n}\n")
    assert json.loads((OUT / "keys.json").read_text())["keys"] == keys
    np.save(OUT / "lerobot_chunks.npy", np.stack([c for _, c in outputs]).astype(np.float32))
    np.save(OUT / "lerobot_chunks_normalized.npy", np.stack([n for n, _ in outputs]).astype(np.float32))
    return {"n_keys": len(keys), "n_params": sum(int(np.prod(s)) for _, s in keys)}


# --------------------------------------------------------------------------------------
def edgeact_to_lerobot(frames: list[np.ndarray]) -> dict:
    sys.path.insert(0, str(REPO / "src"))  # edgeact from this checkout; no install in the LeRobot venv
    import edgeact
    from edgeact import config as ea_config
    from edgeact.checkpoint import save_pretrained
    from edgeact.model.act import ACTPolicy as EdgePolicy

    inputs, outputs = ea_config.rover_features((H, W))
    config = ea_config.ACTConfig(input_features=inputs, output_features=outputs, pretrained_backbone_weights=None)
    policy = EdgePolicy(config).eval()
    shapes = [(k, tuple(v.shape)) for k, v in policy.state_dict().items()]
    weights = recipe.make_state_dict(shapes, REVERSE_SEED)
    policy.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)
    rng = np.random.default_rng(REVERSE_SEED)
    stats = {
        "observation.state": {"mean": np.float32([-0.2, 0.6]), "std": np.float32([0.7, 1.3]),
                              "min": np.float32([-2.0, -3.0]), "max": np.float32([1.5, 4.0])},
        IMAGE_KEY: {"mean": rng.uniform(0.3, 0.6, (3, 1, 1)).astype(np.float32),
                    "std": rng.uniform(0.15, 0.3, (3, 1, 1)).astype(np.float32),
                    "min": np.zeros((3, 1, 1), np.float32), "max": np.ones((3, 1, 1), np.float32)},
        "action": {"mean": np.float32([-0.1, 0.3]), "std": np.float32([0.6, 0.15]),
                   "min": np.float32([-1.0, 0.0]), "max": np.float32([1.0, 0.8])},
    }
    report: dict = {"edgeact_config": "default ACTConfig, rover_features(360x640), pretrained_backbone_weights=None",
                    "weights": f"weight_recipe.make_state_dict(edgeact keys, seed={REVERSE_SEED})"}
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = save_pretrained(policy, stats, Path(tmp) / "ckpt")
        written_config = json.loads((ckpt / "config.json").read_text())

        # Key check against the model LeRobot builds from our config.json.
        from lerobot.configs.policies import PreTrainedConfig

        lr_config = PreTrainedConfig.from_pretrained(ckpt)
        lr_expected = set(ACTPolicy(lr_config).state_dict())
        from safetensors import safe_open

        with safe_open(str(ckpt / "model.safetensors"), "pt") as f:
            ours = set(f.keys())
        report["missing_keys"] = sorted(lr_expected - ours)
        report["unexpected_keys"] = sorted(ours - lr_expected)
        try:
            lr_policy = ACTPolicy.from_pretrained(ckpt, strict=True).eval()
            report["strict_load_ok"] = True
        except (RuntimeError, ValueError, KeyError) as err:  # recorded; the test fails on it
            report["strict_load_ok"] = False
            report["strict_load_error"] = f"{type(err).__name__}: {err}"[:2000]
            lr_policy = ACTPolicy.from_pretrained(ckpt, strict=False).eval()

        # The config keys LeRobot writes for this config, which ours must all contain.
        with tempfile.TemporaryDirectory() as tmp2:
            lr_policy.config._save_pretrained(Path(tmp2))
            lr_written = json.loads((Path(tmp2) / "config.json").read_text())
        report["config_keys_lerobot_writes_not_in_ours"] = sorted(set(lr_written) - set(written_config))
        report["config_values_differing"] = sorted(
            k for k in set(lr_written) & set(written_config)
            if k not in ("device",) and lr_written[k] != written_config[k])

        pre, post = load_pipelines(ckpt)
        backend = edgeact.load_policy(str(ckpt))
        diffs = []
        for frame, state in zip(frames, STATES):
            want = run_lerobot(lr_policy, pre, post, frame, state)[1]
            got = backend.predict_chunk(frame, np.asarray(state, np.float32))
            diffs.append(float(np.abs(want - got).max()))
            print(f"edgeact -> LeRobot: chunk range [{want.min():.3f}, {want.max():.3f}], max abs diff {diffs[-1]:.3g}")
        report["max_abs_diff_per_input"] = diffs
        report["max_abs_diff"] = max(diffs)
    return report


def main() -> None:
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    frames = [recipe.make_frame(seed, H, W) for seed in FRAME_SEEDS]
    (OUT / "cases.json").write_text(json.dumps({
        "about": "inputs: frame = weight_recipe.make_frame(seed, 360, 640) (uint8 RGB HxWx3, "
                 "fed to LeRobot as float32 [0,1] CHW of the same pixels), state (raw); "
                 "LeRobot's real-unit chunks in lerobot_chunks.npy, normalized ones in lerobot_chunks_normalized.npy",
        "frame_seeds": list(FRAME_SEEDS),
        "frame_sha256": [recipe.digest(f) for f in frames],
        "states": STATES,
    }, indent=1) + "\n")
    summary = lerobot_to_edgeact(frames)
    print("LeRobot model:", summary)
    report = edgeact_to_lerobot(frames)
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    report = {"lerobot_version": lerobot.__version__, "torch_version": torch.__version__,
              "python": platform.python_version(), "edgeact_commit": commit, **report}
    (OUT / "edgeact_in_lerobot.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    size = sum(p.stat().st_size for p in OUT.iterdir() if p.is_file())
    print(f"fixture dir {OUT}: {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
