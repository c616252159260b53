"""Backend names -> loaders. Loaders are imported only when asked for, so the Pi needs no torch
for ONNX backends and no Hailo SDK for anything but ``hailo``."""

from __future__ import annotations

import importlib
from pathlib import Path

from edgeact.backends.base import Backend
from edgeact.errors import BackendError, CheckpointError

# name -> (module, what it runs on)
BACKENDS: dict[str, tuple[str, str]] = {
    "torch": ("edgeact.backends.torch_backend", "PyTorch fp32, eager (reference)"),
}


def load_backend(path: str | Path, name: str = "torch", **options) -> Backend:
    """Load the policy at ``path`` with backend ``name``; options go to the backend's loader."""
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    if not Path(path).exists():
        raise CheckpointError(f"model path not found: {path}")
    module = importlib.import_module(BACKENDS[name][0])
    return module.load(path, **options)
