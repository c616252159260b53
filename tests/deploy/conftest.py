"""The deploy tests' "Pi": a remote root whose venv is this test environment, and a lean bundle.
The loopback sshd itself (``loopback_pi``) is shared by every test folder: tests/loopback_sshd.py."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest


@pytest.fixture
def pi_root(tmp_path) -> Path:
    """A remote root on the "Pi" whose venv is this test environment (as after --setup), so the smoke
    check runs the edgeact under test there."""
    root = tmp_path / "pi" / "edgeact"
    root.mkdir(parents=True)
    (root / "venv").symlink_to(sys.prefix)
    return root


@pytest.fixture(scope="session")
def pi_bundle(bundle, tmp_path_factory) -> Path:
    """The tiny export bundle without its PyTorch weights (the ONNX backends do not read them): half
    the bytes to copy and hash in every deploy test."""
    from edgeact.bundle import read_manifest, write_manifest

    lean = tmp_path_factory.mktemp("pi_bundle") / "rover"
    shutil.copytree(bundle, lean)
    (lean / "model.safetensors").unlink()
    write_manifest(lean, read_manifest(lean))
    return lean
