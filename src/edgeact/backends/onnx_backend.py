"""ONNX Runtime backends: ``onnx`` (fp32, ``model.onnx``) and ``onnx-int8`` (``model.int8.onnx``).

Needs only numpy and onnxruntime (no torch): the spec comes from the bundle's manifest.

Session settings, tuned for the latency of one synchronous call:

- ``intra_op_num_threads`` = physical cores (4 on a Pi 5; SMT siblings only contend for
  the same FMA/dot-product units), ``inter_op_num_threads`` = 1, sequential execution (the
  graph is a chain; parallelism is inside each op);
- ``graph_optimization_level`` = ``ORT_ENABLE_ALL`` (constant folding, Conv/Add/Relu and
  QDQ fusions into QLinearConv/MatMulInteger kernels, layout transforms);
- spinning on (``session.intra_op.allow_spinning`` = 1): worker threads spin briefly between
  the parallel sections of one run instead of sleeping, which removes wake-up latency from
  every op. It costs CPU while a run is in progress, not between runs. ``spin=False`` turns
  it off when other busy threads share the cores;
- denormals flushed to zero (no slow paths on tiny activations).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgeact.backends.base import Frames, PolicySpec
from edgeact.errors import BackendError

VARIANTS = {"onnx": "fp32", "onnx-int8": "int8"}


def physical_cores() -> int:
    """Physical cores available to this process (SMT siblings counted once)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return max(1, (os.cpu_count() or 2) // 2)
    cores = set()
    for cpu in cpus:
        siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        try:
            cores.add(siblings.read_text().strip())
        except OSError:
            cores.add(str(cpu))
    return max(1, len(cores))


def session_options(threads: int | None = None, spin: bool = True):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or physical_cores()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.add_session_config_entry("session.set_denormal_as_zero", "1")
    options.log_severity_level = 3
    return options


def spec_from_manifest(manifest: dict) -> PolicySpec:
    policy = manifest["policy"]
    return PolicySpec(
        camera_names=tuple(policy["camera_names"]),
        image_size=tuple(policy["image_size"]),
        state_dim=int(policy["state_dim"]),
        action_dim=int(policy["action_dim"]),
        chunk_size=int(policy["chunk_size"]),
        fps=float(policy.get("fps", 30.0)),
        action_names=tuple(policy.get("action_names", ())),
        extra={"manifest": manifest},
    )


class OnnxBackend:
    """Runs a bundle's ONNX model with ONNX Runtime on the CPU."""

    def __init__(self, path: str | Path, name: str = "onnx", threads: int | None = None, spin: bool = True,
                 verify: bool = True) -> None:
        import onnxruntime as ort

        from edgeact.export.manifest import model_file, read_manifest

        if name not in VARIANTS:
            raise BackendError(f"unknown ONNX backend {name!r}; use one of {sorted(VARIANTS)}")
        self.name = name
        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        self.model_path = model_file(self.path, self.manifest, name, verify=verify)
        self.spec = spec_from_manifest(self.manifest)
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
