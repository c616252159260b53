"""Shared fixtures: tiny ACT checkpoints, episodes and export bundles that build in seconds.

Helpers live in factories.py: this file is shadowed by sub-folder conftest files for imports."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from edgeact.bench import randomize_frozen_bn
from factories import rover_stats, tiny_config, write_episodes
from loopback_sshd import bare_pi, loopback_pi  # noqa: F401 - real sshds playing the Pi, for every test folder

torch.set_num_threads(1)


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    """A saved LeRobot-style pretrained dir of a tiny random ACT at 64x96."""
    from edgeact.checkpoint import save_pretrained
    from edgeact.model.act import ACTPolicy

    torch.manual_seed(0)
    policy = ACTPolicy(tiny_config())
    randomize_frozen_bn(policy)
    return save_pretrained(policy, rover_stats(), tmp_path / "ckpt", fps=20)


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


@pytest.fixture(scope="session")
def litert_quantized(quantized, episodes, tmp_path_factory):
    """The quantized bundle (onnx-int8, torch-int8) plus the three LiteRT models."""
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is a dev dependency (pip install -e '.[dev]')")
    from edgeact.export.quantize_litert import litert_bundle

    out = tmp_path_factory.mktemp("litert-backends") / "bundle"
    shutil.copytree(quantized[0], out)
    litert_bundle(out, episodes, frames=8, heldout=6, log=lambda s: None)
    return out


@pytest.fixture
def episode_dir(tmp_path: Path) -> Path:
    """One 12-frame 48x64 episode (random frames, zero commands) at 30 fps."""
    import cv2

    ep = tmp_path / "episode_000"
    (ep / "frames").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(12):
        img = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        cv2.imwrite(str(ep / "frames" / f"{i:06d}.jpg"), img)
    (ep / "meta.json").write_text(json.dumps({"fps": 30, "image_size": [48, 64]}))
    (ep / "data.csv").write_text("frame,timestamp,steering,throttle\n" +
                                 "".join(f"{i},{i / 30:.4f},0.0,0.0\n" for i in range(12)))
    return ep
