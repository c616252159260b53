"""Tiny ACT configs, stats and models shared by the tests (a module, so any test can import it)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from edgeact.config import ACTConfig, rover_features

TINY = dict(
    dim_model=32, n_heads=4, dim_feedforward=64, n_encoder_layers=1, n_decoder_layers=1,
    n_vae_encoder_layers=1, latent_dim=8, chunk_size=10, n_action_steps=10,
    pretrained_backbone_weights=None,
)


def tiny_config(image_size=(64, 96), **overrides) -> ACTConfig:
    inputs, outputs = rover_features(image_size)
    return ACTConfig(input_features=inputs, output_features=outputs, **{**TINY, **overrides})


def rover_stats(seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Non-trivial stats, so that a missing or misapplied normalization shows."""
    rng = np.random.default_rng(seed)
    def vec(shape, lo, hi):
        return rng.uniform(lo, hi, shape).astype(np.float32)
    return {
        "observation.state": {"mean": vec(2, -0.2, 0.2), "std": vec(2, 0.3, 0.6),
                              "min": vec(2, -1, -0.8), "max": vec(2, 0.8, 1)},
        "action": {"mean": vec(2, -0.2, 0.2), "std": vec(2, 0.3, 0.6),
                   "min": vec(2, -1, -0.8), "max": vec(2, 0.8, 1)},
        "observation.images.cam_front": {"mean": vec((3, 1, 1), 0.4, 0.6), "std": vec((3, 1, 1), 0.2, 0.3),
                                         "min": np.zeros((3, 1, 1), np.float32),
                                         "max": np.ones((3, 1, 1), np.float32)},
    }


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
