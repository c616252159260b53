"""Training presets: the model each builds and how it trains by default.

A preset names an ACTConfig (LeRobot's fields, with the preset's changes) and its training
defaults (batch, state noise, frame size, length). ``edgeact train --preset NAME``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from edgeact.config import ACTConfig, rover_features
from edgeact.errors import ConfigError


@dataclass(frozen=True)
class Preset:
    """A training preset: the model it builds and how it trains by default."""

    name: str
    model: dict[str, Any]  # ACTConfig fields beyond LeRobot's defaults
    batch_size: int
    # Gaussian noise (normalized units) on the state input while training. The state is the
    # previous command, which predicts the next one so well that a policy can learn to copy it
    # and ignore the camera; noise makes the image the signal to rely on.
    state_noise: float
    image_size: tuple[int, int] | None  # frames are resized to this; None: the data's own size
    steps: int  # training length when neither steps nor epochs are given
    summary: str


# rover: LeRobot's defaults are tuned for 50 Hz arm manipulation with 2 s chunks. A rover at
# 30 fps meets new curves within a second, so a 1 s chunk (30 steps) keeps predictions
# relevant and halves decoder work; everything else stays LeRobot's default (resnet18,
# dim_model 512, 4 encoder layers, VAE) so that LeRobot-trained and edgeact-trained models
# are interchangeable and ImageNet backbone weights apply. It trains on a GPU.
ROVER = Preset(
    name="rover",
    model=dict(
        chunk_size=30, n_action_steps=30, dim_model=512, n_heads=8, dim_feedforward=3200,
        n_encoder_layers=4, n_decoder_layers=1, n_vae_encoder_layers=4, latent_dim=32,
        kl_weight=10.0, dropout=0.1, optimizer_lr=1e-5, optimizer_lr_backbone=1e-5,
        optimizer_weight_decay=1e-4,
    ),
    batch_size=8, state_noise=0.5, image_size=None, steps=50_000,
    summary="the real-rover model (LeRobot's ACT with a 1 s chunk); for a GPU",
)
# rover-96x128: the rover model at the smallest input that drove the unseen simulator tracks in
# the input-size study (docs/PI5.md): 1/15 of 360x640's compute, ~4 ms per chunk estimated on a
# Pi 5's CPU in LiteRT int8 against ~62 ms. Camera frames are fitted to it (centre crop, resize).
ROVER_96X128 = replace(
    ROVER, name="rover-96x128", image_size=(96, 128),
    summary="the rover model at 96x128 input: 1/15 of the compute, for the Pi 5's CPU (docs/PI5.md); for a GPU",
)
# tiny: small enough to train on a 2-core CPU in minutes (96x128 frames, dim_model 128): for
# CI, the demo and trying the pipeline end to end; not for a real rover.
TINY = Preset(
    name="tiny",
    model=dict(
        chunk_size=20, n_action_steps=20, dim_model=128, n_heads=4, dim_feedforward=512,
        n_encoder_layers=2, n_decoder_layers=1, n_vae_encoder_layers=2, latent_dim=16,
        kl_weight=10.0, dropout=0.1, optimizer_lr=3e-4, optimizer_lr_backbone=1e-4,
        optimizer_weight_decay=1e-4,
    ),
    batch_size=16, state_noise=0.5, image_size=(96, 128), steps=1500,
    summary="trains on a 2-core CPU in minutes (96x128 frames); for trying the pipeline",
)
PRESETS: dict[str, Preset] = {p.name: p for p in (TINY, ROVER, ROVER_96X128)}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; ConfigError listing the presets otherwise."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]


def model_config(preset: str, image_size: tuple[int, int], state_dim: int, action_dim: int,
                 pretrained: bool, overrides: dict[str, Any] | None = None) -> ACTConfig:
    """The ACTConfig a preset builds for data of the given shape."""
    inputs, outputs = rover_features(image_size, state_dim, action_dim)
    fields = {**get_preset(preset).model, **(overrides or {})}
    return ACTConfig(
        input_features=inputs,
        output_features=outputs,
        pretrained_backbone_weights="ResNet18_Weights.IMAGENET1K_V1" if pretrained else None,
        **fields,
    )
