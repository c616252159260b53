"""Shared fixtures: tiny ACT checkpoints that build in well under a second.

Helpers live in factories.py: this file is shadowed by sub-folder conftest files for imports."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from factories import randomize_frozen_bn, rover_stats, tiny_config

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
