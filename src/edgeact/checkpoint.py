"""Load and save ACT checkpoints in every form our users have.

- LeRobot >= 0.4 pretrained directories: ``config.json`` + ``model.safetensors`` + processor
  files (``policy_preprocessor.json`` / ``policy_postprocessor.json`` and their
  ``*_normalizer_processor.safetensors`` / ``*_unnormalizer_processor.safetensors`` stats);
- older LeRobot checkpoints with stats as buffers in the state dict
  (``normalize_inputs.buffer_observation_state.mean`` ...);
- ``.pth`` / ``.pt`` files holding ``{"model_state_dict": ...}`` or a bare state dict, with
  the config from a ``config.json`` beside it or given explicitly.

What we write is a LeRobot pretrained directory (LeRobot loads it as is) plus
``edgeact.json`` (fps, action names) which LeRobot ignores.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeact.config import OBS_IMAGE_PREFIX, ACTConfig
from edgeact.errors import CheckpointError, ConfigError
from edgeact.fileio import atomic_write_json, replace_dir
from edgeact.policy import PolicySpec
from edgeact.version import __version__

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
META_NAME = "edgeact.json"
PREPROCESSOR_NAME = "policy_preprocessor.json"
POSTPROCESSOR_NAME = "policy_postprocessor.json"
NORMALIZER_STEP = 3  # index of the normalizer in LeRobot's ACT preprocessor pipeline
PROCESSOR_STATS = {
    PREPROCESSOR_NAME: f"policy_preprocessor_step_{NORMALIZER_STEP}_normalizer_processor.safetensors",
    POSTPROCESSOR_NAME: "policy_postprocessor_step_0_unnormalizer_processor.safetensors",
}
LEGACY_STATS_PREFIXES = ("normalize_inputs.", "normalize_targets.", "unnormalize_outputs.")
DEFAULT_FPS = 30.0


@dataclass
class Checkpoint:
    """Everything needed to rebuild a policy, independent of where it came from."""

    config: ACTConfig
    state_dict: dict[str, Any]  # torch tensors, LeRobot key names, no stats buffers
    stats: dict[str, dict[str, np.ndarray]]
    source: Path
    stats_source: str
    fps: float = DEFAULT_FPS
    action_names: tuple[str, ...] = ("steering", "throttle")
    meta: dict[str, Any] = field(default_factory=dict)


def load_checkpoint(
    path: str | Path, config_path: str | Path | None = None, stats_path: str | Path | None = None
) -> Checkpoint:
    """Read a checkpoint directory or .pth/.pt file; raise CheckpointError naming what is wrong."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        return _load_directory(path, config_path, stats_path)
    if path.suffix in (".pth", ".pt", ".bin", ".safetensors"):
        return _load_file(path, config_path, stats_path)
    raise CheckpointError(f"{path}: expected a checkpoint directory or a .pth/.pt/.safetensors file")


def _load_directory(path: Path, config_path, stats_path) -> Checkpoint:
    weights = path / WEIGHTS_NAME
    if not weights.is_file():
        # A training output directory: ours keeps best/ and last/, LeRobot's checkpoints/last/pretrained_model.
        for nested in (path / "best", path / "pretrained_model", path / "checkpoints" / "last" / "pretrained_model"):
            if (nested / WEIGHTS_NAME).is_file():
                return _load_directory(nested, config_path, stats_path)
        raise CheckpointError(f"{path} has no {WEIGHTS_NAME}: is it a LeRobot pretrained_model directory?")
    config = _read_config(Path(config_path) if config_path else path / CONFIG_NAME)
    return _assemble(path, config, _read_safetensors(weights), path, stats_path)


def _load_file(path: Path, config_path, stats_path) -> Checkpoint:
    # The weights first: a corrupt file is reported as such, not as a missing config.
    state = _read_safetensors(path) if path.suffix == ".safetensors" else _read_torch_file(path)
    config_file = Path(config_path) if config_path else path.parent / CONFIG_NAME
    if not config_file.is_file():
        raise CheckpointError(
            f"{path} holds weights only and no {CONFIG_NAME} is beside it: pass the LeRobot config "
            "with --config CONFIG.json (or config_path=...)"
        )
    return _assemble(path, _read_config(config_file), state, path.parent, stats_path)


def _read_config(path: Path) -> ACTConfig:
    try:
        return ACTConfig.from_json(path)
    except ConfigError as err:
        raise CheckpointError(f"cannot use {path}: {err}") from err


def _read_safetensors(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as err:  # safetensors raises its own error types for corrupt headers
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({err}); re-export or re-download it") from err


def _is_torch_file(path: Path) -> bool:
    """torch.save writes a zip archive (PyTorch >= 1.6) or, in the legacy format, a pickle stream."""
    if zipfile.is_zipfile(path):
        return True
    with open(path, "rb") as f:
        return f.read(1) == b"\x80"  # pickle protocol >= 2


def _read_torch_file(path: Path) -> dict[str, Any]:
    import torch

    if not _is_torch_file(path):
        raise CheckpointError(
            f"{path} is not a PyTorch file (neither the zip archive torch.save writes nor a legacy pickle): "
            "it is corrupt, truncated or another format; copy or save it again"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises many types for one cause: unreadable
        raise CheckpointError(
            f"{path} could not be loaded with torch.load(weights_only=True): {err}. "
            "Is the file complete, and does it hold only tensors (no pickled classes)?"
        ) from err
    if isinstance(obj, dict) and "model_state_dict" in obj:
        obj = obj["model_state_dict"]
    elif isinstance(obj, dict) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj):
        raise CheckpointError(f"{path} does not hold a state dict (expected {{'model_state_dict': {{name: tensor}}}})")
    return obj


def _assemble(source: Path, config: ACTConfig, state: dict[str, Any], folder: Path, stats_path) -> Checkpoint:
    state, legacy_stats = _split_legacy_stats(state)
    if stats_path:
        stats, stats_source = _read_stats_json(Path(stats_path)), str(stats_path)
    elif (folder / PREPROCESSOR_NAME).is_file():
        stats, stats_source = read_processor_stats(folder), f"processor files in {folder}"
    elif legacy_stats:
        stats, stats_source = legacy_stats, "normalization buffers in the state dict (LeRobot < 0.4)"
    else:
        raise CheckpointError(
            f"no normalization stats for {source}: expected {PREPROCESSOR_NAME} beside it, "
            "normalize_inputs.* buffers in the state dict, or --stats meta/stats.json of the training dataset"
        )
    stats = _shape_visual_stats(config, stats)
    from edgeact.normalization import check_stats

    check_stats(config, stats, stats_source)
    meta = _read_meta(folder)
    return Checkpoint(
        config=config,
        state_dict=state,
        stats=stats,
        source=source,
        stats_source=stats_source,
        fps=float(meta.get("fps", DEFAULT_FPS)),
        action_names=tuple(meta.get("action_names", ("steering", "throttle"))),
        meta=meta,
    )


def _split_legacy_stats(state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """Separate LeRobot < 0.4 ``normalize_inputs.buffer_<key>.<stat>`` buffers from the weights."""
    weights: dict[str, Any] = {}
    stats: dict[str, dict[str, np.ndarray]] = {}
    for name, tensor in state.items():
        if not name.startswith(LEGACY_STATS_PREFIXES):
            weights[name] = tensor
            continue
        prefix, buffer_name, stat = name.split(".", 2)
        if prefix == "normalize_targets":
            continue  # same numbers as unnormalize_outputs
        key = buffer_name.removeprefix("buffer_")
        stats.setdefault(key, {})[stat] = tensor.detach().cpu().numpy().astype(np.float32)
    return weights, _restore_dotted_keys(stats)


def _restore_dotted_keys(stats: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
    """Buffer names replaced '.' by '_' (observation_images_cam_front); map back to feature keys."""
    out = {}
    for key, value in stats.items():
        if key == "action":
            out["action"] = value
        elif key.startswith("observation_images_"):
            out["observation.images." + key.removeprefix("observation_images_")] = value
        elif key.startswith("observation_"):
            out["observation." + key.removeprefix("observation_")] = value
        else:
            out[key] = value
    return out


def read_processor_stats(folder: Path) -> dict[str, dict[str, np.ndarray]]:
    """Stats from LeRobot >= 0.4 processor files: inputs from the pre-, outputs from the postprocessor."""
    from safetensors.numpy import load_file

    stats: dict[str, dict[str, np.ndarray]] = {}
    for json_name in (PREPROCESSOR_NAME, POSTPROCESSOR_NAME):
        json_path = folder / json_name
        if not json_path.is_file():
            continue
        try:
            pipeline = json.loads(json_path.read_text())
        except json.JSONDecodeError as err:
            raise CheckpointError(f"{json_path} is not valid JSON: {err}") from err
        for step in pipeline.get("steps", []):
            state_file = step.get("state_file")
            if not state_file or "normalizer" not in step.get("registry_name", ""):
                continue
            file = folder / state_file
            if not file.is_file():
                raise CheckpointError(f"{json_path} names {state_file}, which is missing from {folder}")
            for flat_key, array in load_file(str(file)).items():
                key, stat = flat_key.rsplit(".", 1)
                stats.setdefault(key, {})[stat] = array.astype(np.float32)
    return stats


def _read_stats_json(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """A LeRobot dataset's meta/stats.json: {key: {stat: nested list}}."""
    if not path.is_file():
        raise CheckpointError(f"stats file not found: {path}")
    raw = json.loads(path.read_text())
    return {k: {s: np.asarray(v, dtype=np.float32) for s, v in d.items() if s in ("mean", "std", "min", "max")}
            for k, d in raw.items() if isinstance(d, dict)}


def _shape_visual_stats(config: ACTConfig, stats: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
    out = {k: dict(v) for k, v in stats.items()}
    for key in config.image_features:
        for stat, value in out.get(key, {}).items():
            out[key][stat] = np.asarray(value, dtype=np.float32).reshape(3, 1, 1)
    return out


def _read_meta(folder: Path) -> dict[str, Any]:
    meta_file = folder / META_NAME
    if not meta_file.is_file():
        return {}
    try:
        return json.loads(meta_file.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{meta_file} is not valid JSON: {err}") from err


# --------------------------------------------------------------------------------------
def build_policy(checkpoint: Checkpoint):
    """Instantiate the ACTPolicy and load the weights strictly, naming any key mismatch."""
    from edgeact.model.act import ACTPolicy

    policy = ACTPolicy(checkpoint.config)
    expected = policy.state_dict()
    given = checkpoint.state_dict
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{checkpoint.source} does not match its config ({len(missing)} missing, {len(unexpected)} unexpected "
            f"keys). Missing: {_preview(missing)}. Unexpected: {_preview(unexpected)}. Is config.json the one "
            "this model was trained with?"
        )
    wrong_shape = [
        f"{k}: checkpoint {tuple(given[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if tuple(given[k].shape) != tuple(v.shape)
    ]
    if wrong_shape:
        raise CheckpointError(f"{checkpoint.source}: tensor shapes differ from the config: {_preview(wrong_shape)}")
    policy.load_state_dict(given, strict=True)
    return policy.eval()


def _preview(items: list[str], n: int = 6) -> str:
    if not items:
        return "none"
    more = f" ... (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


# --------------------------------------------------------------------------------------
def save_pretrained(
    policy,
    stats: dict[str, dict[str, np.ndarray]],
    out_dir: str | Path,
    fps: float = DEFAULT_FPS,
    action_names: tuple[str, ...] = ("steering", "throttle"),
    extra_meta: dict[str, Any] | None = None,
) -> Path:
    """Write a LeRobot pretrained directory (+ edgeact.json), replacing ``out_dir`` atomically."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        config: ACTConfig = policy.config
        config.to_json(tmp / CONFIG_NAME)
        state = {k: v.detach().contiguous().cpu() for k, v in policy.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        write_processor_files(tmp, config, stats)
        meta = {"fps": fps, "action_names": list(action_names), "edgeact_version": __version__, **(extra_meta or {})}
        atomic_write_json(tmp / META_NAME, meta)
        replace_dir(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def write_processor_files(folder: Path, config: ACTConfig, stats: dict[str, dict[str, np.ndarray]]) -> None:
    """The processor pipeline files LeRobot >= 0.4 writes for ACT, with our stats."""
    from safetensors.numpy import save_file

    features = {**config.input_features, **config.output_features}

    def feature_json(items):
        return {k: {"type": f.type, "shape": list(f.shape)} for k, f in items}

    def flat(keys) -> dict[str, np.ndarray]:
        return {
            f"{k}.{s}": np.ascontiguousarray(v, dtype=np.float32)
            for k in keys
            for s, v in stats.get(k, {}).items()
        }

    norm_map = dict(config.normalization_mapping)
    pre_stats, post_stats = PROCESSOR_STATS[PREPROCESSOR_NAME], PROCESSOR_STATS[POSTPROCESSOR_NAME]
    preprocessor = {
        "name": "policy_preprocessor",
        "steps": [
            {"registry_name": "rename_observations_processor", "config": {"rename_map": {}}},
            {"registry_name": "to_batch_processor", "config": {}},
            {"registry_name": "device_processor", "config": {"device": "cpu", "float_dtype": None}},
            {
                "registry_name": "normalizer_processor",
                "config": {"eps": 1e-8, "features": feature_json(features.items()), "norm_map": norm_map},
                "state_file": pre_stats,
            },
        ],
    }
    postprocessor = {
        "name": "policy_postprocessor",
        "steps": [
            {
                "registry_name": "unnormalizer_processor",
                "config": {"eps": 1e-8, "features": feature_json(config.output_features.items()), "norm_map": norm_map},
                "state_file": post_stats,
            },
            {"registry_name": "device_processor", "config": {"device": "cpu", "float_dtype": None}},
        ],
    }
    atomic_write_json(folder / PREPROCESSOR_NAME, preprocessor)
    atomic_write_json(folder / POSTPROCESSOR_NAME, postprocessor)
    save_file(flat(features), str(folder / pre_stats))
    save_file(flat(config.output_features), str(folder / post_stats))


def spec_from_checkpoint(checkpoint: Checkpoint) -> PolicySpec:
    """What the checkpoint's policy takes and gives (its config, fps and action names)."""
    config = checkpoint.config
    return PolicySpec(
        camera_names=tuple(k.removeprefix(OBS_IMAGE_PREFIX) for k in config.image_features),
        image_size=config.image_size,
        state_dim=config.state_dim,
        action_dim=config.action_dim,
        chunk_size=config.chunk_size,
        fps=checkpoint.fps,
        action_names=checkpoint.action_names,
    )
