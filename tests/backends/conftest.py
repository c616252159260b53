"""Tiny bundles for the backend tests (same builders as tests/export, kept separate so each folder runs alone)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from edgeact.config import ACTConfig, rover_features

torch.set_num_threads(1)

TINY = dict(
    dim_model=32, n_heads=4, dim_feedforward=64, n_encoder_layers=1, n_decoder_layers=1,
    n_vae_encoder_layers=1, latent_dim=8, chunk_size=10, n_action_steps=10,
    pretrained_backbone_weights=None,
)
IMAGE_SIZE = (64, 96)


def tiny_config(image_size=IMAGE_SIZE, **overrides) -> ACTConfig:
    inputs, outputs = rover_features(image_size)
    return ACTConfig(input_features=inputs, output_features=outputs, **{**TINY, **overrides})


def write_episodes(root: Path, n_episodes: int = 3, length: int = 12, image_size=(72, 108), seed: int = 0) -> Path:
    """Episodes in the rover format (frames/*.jpg, data.csv, meta.json), frames larger than the model's."""
    import cv2

    from edgeact.export.calibration import synthetic_frames

    rng = np.random.default_rng(seed)
    for e in range(n_episodes):
        folder = root / f"episode_{e:03d}"
        (folder / "frames").mkdir(parents=True)
        frames = synthetic_frames(length, image_size, seed=seed + e)
        steer = np.clip(np.cumsum(rng.normal(0, 0.1, length)), -1, 1)
        throttle = np.clip(0.4 + rng.normal(0, 0.05, length), -1, 1)
        with open(folder / "data.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["frame", "timestamp", "steering", "throttle"])
            for i in range(length):
                cv2.imwrite(str(folder / "frames" / f"{i:06d}.jpg"), cv2.cvtColor(frames[i], cv2.COLOR_RGB2BGR))
                w.writerow([i, f"{i / 20:.3f}", f"{steer[i]:.4f}", f"{throttle[i]:.4f}"])
        (folder / "meta.json").write_text(json.dumps({"fps": 20, "image_size": list(image_size)}))
    return root


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> Path:
    from edgeact.bench import random_checkpoint

    return random_checkpoint(tiny_config(), tmp_path_factory.mktemp("ckpt") / "ckpt", seed=0, fps=20)


@pytest.fixture(scope="session")
def episodes(tmp_path_factory) -> Path:
    return write_episodes(tmp_path_factory.mktemp("episodes"))


@pytest.fixture(scope="session")
def export_result(tiny_ckpt, episodes, tmp_path_factory):
    from edgeact.export.onnx_export import export_bundle

    return export_bundle(tiny_ckpt, tmp_path_factory.mktemp("bundles") / "bundle", frames=episodes, log=lambda s: None)


@pytest.fixture(scope="session")
def bundle(export_result) -> Path:
    return export_result.bundle


@pytest.fixture(scope="session")
def quantized(bundle, episodes, tmp_path_factory):
    """A copy of the bundle with onnx-int8 (one node kept float) and torch-int8 models."""
    from edgeact.export.quantize_onnx import quantize_bundle
    from edgeact.export.quantize_torch import quantize_torch_bundle

    out = tmp_path_factory.mktemp("quantized") / "bundle"
    shutil.copytree(bundle, out)
    onnx_result = quantize_bundle(out, episodes, frames=8, heldout=6,
                                  keep_float=["/policy/model/encoder/layers.0/linear1/MatMul"], log=lambda s: None)
    torch_result = quantize_torch_bundle(out, episodes, frames=4, heldout=6, observer="minmax", log=lambda s: None)
    return out, onnx_result, torch_result


def copy_bundle(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
