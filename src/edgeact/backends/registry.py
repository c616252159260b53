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
    "litert-int8": ("edgeact.backends.litert_backend:load_int8",
                    "LiteRT + XNNPACK int8 on the CPU (model.litert-int8.tflite; the Pi 5's fast path)"),
    "litert-fp16": ("edgeact.backends.litert_backend:load_fp16",
                    "LiteRT + XNNPACK fp16 on the CPU (model.litert-fp16.tflite; fp16 arithmetic on the Pi 5)"),
    "litert": ("edgeact.backends.litert_backend", "LiteRT + XNNPACK fp32 on the CPU (model.litert.tflite)"),
    "hailo-split": ("edgeact.backends.hailo_backend",
                    "Hailo-8L/8/10H NPU backbone (hailo/split/<board>/model.hef) + ONNX Runtime transformer"),
    "hailo": ("edgeact.backends.hailo_backend:load_full",
              "the whole policy on the Hailo-8L/8/10H NPU (hailo/full/<board>/model.hef)"),
}
# what `auto` prefers when a Hailo device is present, in order
HAILO_PREFERENCE = ("hailo-split", "hailo")
# what `auto` prefers on the CPU, fastest first, per machine (docs/PI5.md has the measurements and sources):
# on the Pi 5 XNNPACK's published int8 efficiency is ~4x ONNX Runtime's; on x86 ONNX Runtime's int8 is the
# faster in our same-run bench (`edgeact bench BUNDLE`)
CPU_PREFERENCE = {
    "arm64": ("litert-int8", "onnx-int8", "litert-fp16", "litert", "onnx"),
    "x86": ("onnx-int8", "litert-int8", "onnx", "litert-fp16", "litert"),
}


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
    return cpu_backend(models)


def cpu_arch(machine: str) -> str:
    """The key of :data:`CPU_PREFERENCE` for a machine as ``uname -m`` names it."""
    return "arm64" if machine.lower() in ("aarch64", "arm64") else "x86"


def cpu_backend(models: dict | tuple | list) -> str:
    """The fastest CPU backend among ``models`` for this machine; LiteRT's only where its runtime is installed."""
    import platform

    from edgeact.backends.litert_backend import runtime_available

    litert = runtime_available()
    for name in CPU_PREFERENCE[cpu_arch(platform.machine())]:
        if name in models and (litert or not name.startswith("litert")):
            return name
    return "onnx"


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
