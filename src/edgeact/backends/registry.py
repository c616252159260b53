"""Backend names -> loaders. Loaders are imported only when asked for, so the Pi needs no torch
for the ONNX backends."""

from __future__ import annotations

import importlib
from pathlib import Path

from edgeact.errors import BackendError, CheckpointError
from edgeact.policy import Backend

# name -> (module, what it runs on); "module:function" names a loader other than ``load``
BACKENDS: dict[str, tuple[str, str]] = {
    "torch": ("edgeact.backends.torch_backend", "PyTorch fp32, eager (reference)"),
    "onnx": ("edgeact.backends.onnx_backend", "ONNX Runtime fp32 on the CPU (model.onnx)"),
    "onnx-int8": ("edgeact.backends.onnx_backend:load_int8",
                  "ONNX Runtime static int8 QDQ on the CPU (model.int8.onnx)"),
    "torch-int8": ("edgeact.backends.torch_int8_backend",
                   "PyTorch int8 TorchScript on the CPU (model.int8.torchscript.pt)"),
    "hailo-split": ("edgeact.backends.hailo_backend",
                    "Hailo-8L/8/10H NPU backbone (hailo/split/<board>/model.hef) + ONNX Runtime transformer"),
    "hailo": ("edgeact.backends.hailo_backend:load_full",
              "the whole policy on the Hailo-8L/8/10H NPU (hailo/full/<board>/model.hef)"),
}
# what `auto` prefers when a Hailo device is present, in order
HAILO_PREFERENCE = ("hailo-split", "hailo")


def default_backend(path: str | Path) -> str:
    """What ``auto`` means: a bundle's compiled HEF when a Hailo device is present, else its fastest
    CPU model (int8 when quantized), else PyTorch."""
    manifest = Path(path) / "manifest.json"
    if not manifest.is_file():
        return "torch"
    import json

    models = json.loads(manifest.read_text()).get("models", {})
    hefs = [name for name in HAILO_PREFERENCE if name in models]
    if hefs:
        from edgeact.backends.hailo_backend import hailo_device_present

        if hailo_device_present():
            return hefs[0]
    return "onnx-int8" if "onnx-int8" in models else "onnx"


def load_backend(path: str | Path, name: str = "auto", **options) -> Backend:
    """Load the policy at ``path`` with backend ``name`` ("auto": see default_backend); options go
    to the backend's loader."""
    if name != "auto" and name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; choose one of: auto, {', '.join(BACKENDS)}")
    if not Path(path).exists():
        raise CheckpointError(f"model path not found: {path}")
    if name == "auto":
        name = default_backend(path)
    module_name, _, loader = BACKENDS[name][0].partition(":")
    return getattr(importlib.import_module(module_name), loader or "load")(path, **options)
