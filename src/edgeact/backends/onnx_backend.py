"""ONNX Runtime backends: ``onnx`` (fp32, ``model.onnx``) and ``onnx-int8`` (``model.int8.onnx``).

Needs only numpy and onnxruntime (no torch): the spec comes from the bundle's manifest.

Session settings: :func:`edgeact.cpu.session_options`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeact.bundle import read_model
from edgeact.cpu import physical_cores, session_options
from edgeact.errors import BackendError
from edgeact.policy import Frames

VARIANTS = {"onnx": "fp32", "onnx-int8": "int8"}


class OnnxBackend:
    """Runs a bundle's ONNX model with ONNX Runtime on the CPU."""

    def __init__(self, path: str | Path, name: str = "onnx", threads: int | None = None, spin: bool = True,
                 verify: bool = True) -> None:
        import onnxruntime as ort

        if name not in VARIANTS:
            raise BackendError(f"unknown ONNX backend {name!r}; use one of {sorted(VARIANTS)}")
        self.name = name
        self.path = Path(path)
        self.manifest, self.model_path, self.spec = read_model(self.path, name, verify)
        self.threads = threads or physical_cores()
        try:
            self.session = ort.InferenceSession(
                str(self.model_path), session_options(self.threads, spin), providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # ORT raises its own types for corrupt or unsupported models
            raise BackendError(
                f"ONNX Runtime {ort.__version__} cannot load {self.model_path}: {err}. Is the file complete? "
                "Re-create it with `edgeact export` (or `edgeact quantize` for model.int8.onnx)"
            ) from err
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_name = self.session.get_outputs()[0].name
        expected = [i["name"] for i in self.manifest["inputs"]]
        if self.input_names != expected:
            raise BackendError(f"{self.model_path} takes inputs {self.input_names}, the manifest says {expected}")
        self.n_cameras = len(self.spec.camera_names)

    def predict_chunk(self, image: Frames, state: np.ndarray) -> np.ndarray:
        frames, state = self.spec.check_inputs(image, state)
        feeds = {name: np.ascontiguousarray(f)[None] for name, f in zip(self.input_names, frames)}
        if self.spec.state_dim:
            feeds[self.input_names[self.n_cameras]] = state.reshape(1, -1)
        chunk = self.session.run([self.output_name], feeds)[0][0]
        return chunk.astype(np.float32, copy=False)

    def close(self) -> None:
        self.session = None


def load(path: str | Path, threads: int | None = None, spin: bool = True, verify: bool = True) -> OnnxBackend:
    """``onnx`` backend: ONNX Runtime fp32 on ``model.onnx`` of an export bundle."""
    return OnnxBackend(path, "onnx", threads=threads, spin=spin, verify=verify)


def load_int8(path: str | Path, threads: int | None = None, spin: bool = True, verify: bool = True) -> OnnxBackend:
    """``onnx-int8`` backend: ONNX Runtime static int8 (QDQ) on ``model.int8.onnx``."""
    return OnnxBackend(path, "onnx-int8", threads=threads, spin=spin, verify=verify)
