"""Normalization of inputs and outputs, computed exactly as LeRobot computes it.

Stats are ``{feature key: {"mean"|"std"|"min"|"max": array}}`` (image stats shaped (3, 1, 1)).
The mode of a feature comes from ``config.normalization_mapping[feature.type]``:

- MEAN_STD: (x - mean) / (std + eps); inverse x * std + mean
- MIN_MAX: 2 (x - min) / (max - min) - 1 (a zero range becomes eps); inverse accordingly
- IDENTITY (or no stats for the key, as LeRobot does): unchanged

Images are scaled to [0, 1] before this step.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor, nn

from edgeact.config import ACTConfig
from edgeact.errors import CheckpointError

Stats = dict[str, dict[str, np.ndarray]]

EPS = 1e-8
REQUIRED_STATS = {"MEAN_STD": ("mean", "std"), "MIN_MAX": ("min", "max"), "IDENTITY": ()}


def feature_mode(config: ACTConfig, key: str) -> str:
    """Normalization mode of one input or output feature."""
    feature = config.input_features.get(key) or config.output_features.get(key)
    if feature is None:
        raise KeyError(key)
    return config.normalization_mapping.get(feature.type, "IDENTITY")


def check_stats(config: ACTConfig, stats: Stats, source: str) -> None:
    """Raise CheckpointError when a normalized feature lacks its statistics, naming which.

    LeRobot silently skips features without stats; for a driving policy that gives
    nonsense actions, so we refuse instead.
    """
    problems = []
    for key in [*config.input_features, *config.output_features]:
        needed = REQUIRED_STATS[feature_mode(config, key)]
        have = stats.get(key, {})
        missing = [s for s in needed if s not in have]
        if missing:
            problems.append(f"{key} needs {missing}")
        for name in needed:
            if name in have and not np.all(np.isfinite(have[name])):
                problems.append(f"{key}.{name} contains NaN or inf")
    if problems:
        raise CheckpointError(
            f"normalization stats from {source} are incomplete: " + "; ".join(problems) + ". Without them the "
            "policy would run on unnormalized values; give the training dataset's stats with --stats "
            "meta/stats.json (or stats_path=...), or save the checkpoint again with its processor files")


class FeatureNormalizer(nn.Module):
    """Normalizes (and un-normalizes) one feature with stats held as buffers.

    Buffers are non-persistent: the stats live in the processor files, not in the
    model's state dict, so the state dict stays LeRobot's.
    """

    def __init__(self, mode: str, stats: Mapping[str, np.ndarray] | None, eps: float = EPS) -> None:
        super().__init__()
        self.mode = mode if stats else "IDENTITY"
        self.eps = eps
        for name in REQUIRED_STATS[self.mode]:
            self.register_buffer(name, torch.as_tensor(np.asarray(stats[name], dtype=np.float32)), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.mode == "MEAN_STD":
            return (x - self.mean) / (self.std + self.eps)
        if self.mode == "MIN_MAX":
            return 2 * (x - self.min) / self._range() - 1
        return x

    def inverse(self, x: Tensor) -> Tensor:
        if self.mode == "MEAN_STD":
            return x * self.std + self.mean
        if self.mode == "MIN_MAX":
            return (x + 1) / 2 * self._range() + self.min
        return x

    def _range(self) -> Tensor:
        span = self.max - self.min
        return torch.where(span == 0, torch.full_like(span, self.eps), span)


def make_normalizers(config: ACTConfig, stats: Stats) -> nn.ModuleDict:
    """One FeatureNormalizer per input and output feature, keyed by feature key with '.' -> '_'."""
    return nn.ModuleDict(
        {
            key.replace(".", "_"): FeatureNormalizer(feature_mode(config, key), stats.get(key))
            for key in [*config.input_features, *config.output_features]
        }
    )


def imagenet_stats() -> dict[str, np.ndarray]:
    """ImageNet per-channel stats for [0,1] images, (3,1,1), as LeRobot uses for pretrained backbones."""
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(3, 1, 1)
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(3, 1, 1)
    return {"mean": mean, "std": std, "min": np.zeros((3, 1, 1), np.float32), "max": np.ones((3, 1, 1), np.float32)}
