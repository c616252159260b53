"""LiteRT backends with XNNPACK, the engine for the Pi 5's CPU: ``litert-int8``, ``litert-fp16``,
``litert`` (fp32).

Needs numpy and ``ai-edge-litert`` (PyPI's aarch64 wheels for Python 3.11; XNNPACK built in;
no torch). XNNPACK picks its kernels for the CPU it runs on: SDOT int8 and fp16 arithmetic on
the Pi 5's Cortex-A76. The fp16 model asks for fp16 arithmetic through its metadata; where the
CPU has none (x86 without AVX512-FP16) XNNPACK computes it in fp32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeact.bundle import LITERT_MODELS, read_model
from edgeact.cpu import physical_cores
from edgeact.errors import BackendError
from edgeact.policy import Frames


def runtime_available() -> bool:
    """Whether LiteRT's interpreter can be imported here (an optional extra on x86)."""
    try:
        from ai_edge_litert import interpreter  # noqa: F401
    except ImportError:
        return False
    return True


class LiteRTBackend:
    """Runs one of a bundle's LiteRT models with the XNNPACK delegate."""

    def __init__(self, path: str | Path, name: str = "litert-int8", threads: int | None = None,
                 verify: bool = True) -> None:
        if name not in LITERT_MODELS:
            raise BackendError(f"unknown LiteRT backend {name!r}; use one of {sorted(LITERT_MODELS)}")
        try:
            from ai_edge_litert import interpreter as litert
        except ImportError as err:
            raise BackendError(
                f"backend {name} needs LiteRT: pip install 'edgeact[litert]' (ai-edge-litert, no torch)") from err
        self.name = name
        self.path = Path(path)
        self.manifest, self.model_path, self.spec = read_model(self.path, name, verify)
        self.threads = threads or physical_cores()
        try:
            self.interpreter = litert.Interpreter(model_path=str(self.model_path), num_threads=self.threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            raise BackendError(
                f"LiteRT cannot load {self.model_path}: {err}. Re-create it with `edgeact quantize "
                f"{self.path} --target pi5`") from err
        by_name = {d["name"]: d["index"] for d in self.interpreter.get_input_details()}
        expected = [i["name"] for i in self.manifest["inputs"]]
        if sorted(by_name) != sorted(expected):
            raise BackendError(f"{self.model_path} takes inputs {sorted(by_name)}, the manifest says {expected}")
        self.input_indices = [by_name[n] for n in expected]
        self.output_index = self.interpreter.get_output_details()[0]["index"]
        self.n_cameras = len(self.spec.camera_names)

    def predict_chunk(self, image: Frames, state: np.ndarray) -> np.ndarray:
        frames, state = self.spec.check_inputs(image, state)
        for index, frame in zip(self.input_indices, frames):
            self.interpreter.set_tensor(index, np.ascontiguousarray(frame)[None])
        if self.spec.state_dim:
            self.interpreter.set_tensor(self.input_indices[self.n_cameras], state.reshape(1, -1))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output_index)[0].astype(np.float32, copy=False)

    def close(self) -> None:
        self.interpreter = None


def load_int8(path: str | Path, threads: int | None = None, verify: bool = True, **_: object) -> LiteRTBackend:
    """``litert-int8``: int8 convolutions and matmuls (per-channel weights) in XNNPACK."""
    return LiteRTBackend(path, "litert-int8", threads=threads, verify=verify)


def load_fp16(path: str | Path, threads: int | None = None, verify: bool = True, **_: object) -> LiteRTBackend:
    """``litert-fp16``: fp16 weights; fp16 arithmetic where the CPU has it (the Pi 5 does)."""
    return LiteRTBackend(path, "litert-fp16", threads=threads, verify=verify)


def load(path: str | Path, threads: int | None = None, verify: bool = True, **_: object) -> LiteRTBackend:
    """``litert``: fp32 in XNNPACK."""
    return LiteRTBackend(path, "litert", threads=threads, verify=verify)
