"""ACT configuration with LeRobot's field names, defaults and config.json layout.

A LeRobot ``config.json`` is read as it is (unknown keys are kept and written back, so a
round trip loses nothing) and the file we write loads in LeRobot's ``ACTConfig``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeact.errors import ConfigError
from edgeact.fileio import atomic_write_text

OBS_STATE = "observation.state"
OBS_ENV_STATE = "observation.environment_state"
OBS_IMAGE_PREFIX = "observation.images."
ACTION = "action"

FEATURE_TYPES = ("VISUAL", "STATE", "ENV", "ACTION")
NORMALIZATION_MODES = ("MEAN_STD", "MIN_MAX", "IDENTITY")
RESNET_BACKBONES = ("resnet18", "resnet34", "resnet50")
# LeRobot's PreTrainedConfig fields that the model does not use, with LeRobot's defaults: written
# when a config did not come with them, so our config.json has every key LeRobot's has. A null
# device lets LeRobot pick the best device available when it loads the file.
LEROBOT_BASE_FIELDS: dict[str, Any] = {
    "device": None, "use_amp": False, "use_peft": False, "push_to_hub": True, "repo_id": None,
    "private": None, "tags": None, "license": None, "pretrained_path": None,
}


@dataclass
class PolicyFeature:
    """One input or output of the policy: its kind and shape (images are C, H, W)."""

    type: str
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.type not in FEATURE_TYPES:
            raise ConfigError(f"feature type {self.type!r} is not one of {FEATURE_TYPES}")
        self.shape = tuple(int(s) for s in self.shape)


def _default_normalization() -> dict[str, str]:
    return {"VISUAL": "MEAN_STD", "STATE": "MEAN_STD", "ACTION": "MEAN_STD"}


def rover_features(
    image_size: tuple[int, int] = (360, 640), state_dim: int = 2, action_dim: int = 2
) -> tuple[dict[str, PolicyFeature], dict[str, PolicyFeature]]:
    """Input and output features of the users' rover: one front camera, state, steering+throttle."""
    h, w = image_size
    inputs = {
        OBS_STATE: PolicyFeature("STATE", (state_dim,)),
        OBS_IMAGE_PREFIX + "cam_front": PolicyFeature("VISUAL", (3, h, w)),
    }
    outputs = {ACTION: PolicyFeature("ACTION", (action_dim,))}
    return inputs, outputs


@dataclass
class ACTConfig:
    """LeRobot's ``ACTConfig``: same field names, same defaults."""

    n_obs_steps: int = 1
    chunk_size: int = 100
    n_action_steps: int = 100
    input_features: dict[str, PolicyFeature] = field(default_factory=dict)
    output_features: dict[str, PolicyFeature] = field(default_factory=dict)
    normalization_mapping: dict[str, str] = field(default_factory=_default_normalization)
    vision_backbone: str = "resnet18"
    pretrained_backbone_weights: str | None = "ResNet18_Weights.IMAGENET1K_V1"
    replace_final_stride_with_dilation: bool = False
    pre_norm: bool = False
    dim_model: int = 512
    n_heads: int = 8
    dim_feedforward: int = 3200
    feedforward_activation: str = "relu"
    n_encoder_layers: int = 4
    n_decoder_layers: int = 1
    use_vae: bool = True
    latent_dim: int = 32
    n_vae_encoder_layers: int = 4
    temporal_ensemble_coeff: float | None = None
    dropout: float = 0.1
    kl_weight: float = 10.0
    optimizer_lr: float = 1e-5
    optimizer_weight_decay: float = 1e-4
    optimizer_lr_backbone: float = 1e-5
    # Keys of a LeRobot config.json that the model does not use (device, use_amp, repo_id, ...):
    # kept so that writing the config back gives LeRobot the file it wrote.
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.validate()

    # -- features ---------------------------------------------------------------------
    @property
    def image_features(self) -> dict[str, PolicyFeature]:
        return {k: f for k, f in self.input_features.items() if f.type == "VISUAL"}

    @property
    def robot_state_feature(self) -> PolicyFeature | None:
        return next((f for f in self.input_features.values() if f.type == "STATE"), None)

    @property
    def env_state_feature(self) -> PolicyFeature | None:
        return next((f for f in self.input_features.values() if f.type == "ENV"), None)

    @property
    def action_feature(self) -> PolicyFeature:
        feature = next((f for f in self.output_features.values() if f.type == "ACTION"), None)
        if feature is None:
            raise ConfigError("config has no ACTION output feature; add output_features.action")
        return feature

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) of the camera input; all cameras share one size."""
        shapes = {f.shape[1:] for f in self.image_features.values()}
        if not shapes:
            raise ConfigError("config has no VISUAL input feature")
        h, w = next(iter(shapes))
        return int(h), int(w)

    @property
    def state_dim(self) -> int:
        feature = self.robot_state_feature
        return feature.shape[0] if feature else 0

    @property
    def action_dim(self) -> int:
        return self.action_feature.shape[0]

    # -- checks -----------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ConfigError for any setting the model cannot honour."""
        if self.n_obs_steps != 1:
            raise ConfigError(f"n_obs_steps={self.n_obs_steps}: ACT supports only 1 (as in LeRobot)")
        if self.vision_backbone not in RESNET_BACKBONES:
            raise ConfigError(
                f"vision_backbone={self.vision_backbone!r} is not supported; use one of {RESNET_BACKBONES}"
            )
        if self.n_action_steps > self.chunk_size:
            raise ConfigError(
                f"n_action_steps={self.n_action_steps} exceeds chunk_size={self.chunk_size}"
            )
        if self.dim_model % self.n_heads:
            raise ConfigError(f"dim_model={self.dim_model} is not divisible by n_heads={self.n_heads}")
        if self.feedforward_activation not in ("relu", "gelu", "glu"):
            raise ConfigError(f"feedforward_activation={self.feedforward_activation!r}: use relu, gelu or glu")
        for kind, mode in self.normalization_mapping.items():
            if mode not in NORMALIZATION_MODES:
                raise ConfigError(f"normalization_mapping[{kind!r}]={mode!r}: use one of {NORMALIZATION_MODES}")
        if self.input_features or self.output_features:
            if not self.image_features and self.env_state_feature is None:
                raise ConfigError("ACT needs at least one image or an environment-state input")
            self.action_feature  # noqa: B018 - raises when missing
            sizes = {f.shape for f in self.image_features.values()}
            if len(sizes) > 1:
                raise ConfigError(f"all cameras must share one image shape, got {sorted(sizes)}")

    # -- LeRobot config.json ----------------------------------------------------------
    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ACTConfig:
        raw = dict(raw)
        policy_type = raw.pop("type", "act")
        if policy_type != "act":
            raise ConfigError(f"config.json is for policy type {policy_type!r}; edgeact runs only 'act'")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        kwargs = {k: raw.pop(k) for k in list(raw) if k in known}
        for key in ("input_features", "output_features"):
            if key in kwargs:
                kwargs[key] = {
                    name: PolicyFeature(str(f["type"]), tuple(f["shape"])) for name, f in kwargs[key].items()
                }
        return cls(**kwargs, extra=raw)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "act"}
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if f.name in ("input_features", "output_features"):
                value = {k: {"type": v.type, "shape": list(v.shape)} for k, v in value.items()}
            out[f.name] = value
        out.update(LEROBOT_BASE_FIELDS)
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, path: str | Path) -> ACTConfig:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path} is not valid JSON: {err}") from err
        try:
            return cls.from_dict(raw)
        except TypeError as err:
            raise ConfigError(f"{path}: {err}") from err

    def to_json(self, path: str | Path) -> None:
        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=4) + "\n")
