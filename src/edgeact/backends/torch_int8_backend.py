"""``torch-int8`` backend: the bundle's TorchScript int8 model (``model.int8.torchscript.pt``).

Loads with ``torch.jit.load``: no edgeact model code, no training code. The quantized engine
is the machine's (QNNPACK on ARM, FBGEMM/oneDNN "x86" elsewhere); the weights are re-packed
for it at load. See :mod:`edgeact.export.quantize_torch` for how the model is built.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeact.backends.torch_backend import predict_with_module
from edgeact.bundle import model_file, read_manifest, spec_from_manifest
from edgeact.cpu import host_engine
from edgeact.errors import BackendError
from edgeact.policy import Frames


class TorchInt8Backend:
    name = "torch-int8"

    def __init__(self, path: str | Path, threads: int | None = None, engine: str | None = None,
                 verify: bool = True) -> None:
        try:
            import torch
        except ImportError as err:
            raise BackendError("the torch-int8 backend needs PyTorch: pip install 'edgeact[torch]'") from err

        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        self.model_path = model_file(self.path, self.manifest, self.name, verify=verify)
        self.spec = spec_from_manifest(self.manifest)
        supported = torch.backends.quantized.supported_engines
        if engine is None:
            engine = host_engine()
        if engine not in supported:
            raise BackendError(f"quantized engine {engine!r} is not in this PyTorch build (has {supported})")
        torch.backends.quantized.engine = engine
        import warnings

        # dynamic Linear was built with reduce_range for x86; QNNPACK uses the full range, which is fine
        warnings.filterwarnings("ignore", message="Currently, qnnpack incorrectly ignores reduce_range")
        self.engine = engine
        if threads:
            torch.set_num_threads(threads)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript: see quantize_torch's docstring
                self.module = torch.jit.load(str(self.model_path), map_location="cpu").eval()
        except Exception as err:
            raise BackendError(
                f"PyTorch {torch.__version__} cannot load {self.model_path}: {err}. Re-create it with "
                f"`edgeact quantize {self.path} --calib EPISODES`"
            ) from err

    def predict_chunk(self, image: Frames, state: np.ndarray) -> np.ndarray:
        return predict_with_module(self.module, self.spec, image, state)

    def close(self) -> None:
        self.module = None


def load(path: str | Path, threads: int | None = None, engine: str | None = None,
         verify: bool = True) -> TorchInt8Backend:
    return TorchInt8Backend(path, threads=threads, engine=engine, verify=verify)
