"""PyTorch fp32 backend: the reference every other backend is checked against."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeact.checkpoint import Checkpoint, build_policy, load_checkpoint, spec_from_checkpoint
from edgeact.policy import Frames, PolicySpec


def predict_with_module(module, spec: PolicySpec, image: Frames, state: np.ndarray) -> np.ndarray:
    """Run a module taking (*frames uint8 NHWC, state) on one checked observation; (chunk, A) float32."""
    import torch

    frames, state = spec.check_inputs(image, state)
    inputs = [torch.from_numpy(np.ascontiguousarray(f))[None] for f in frames]
    if spec.state_dim:
        inputs.append(torch.from_numpy(state)[None])
    with torch.inference_mode():
        chunk = module(*inputs)[0]
    return chunk.numpy().astype(np.float32, copy=False)


class TorchBackend:
    """Runs :class:`~edgeact.model.inference.InferenceModel` in eager PyTorch on the CPU."""

    name = "torch"

    def __init__(self, checkpoint: Checkpoint, threads: int | None = None) -> None:
        import torch

        from edgeact.model.inference import InferenceModel

        if threads:
            torch.set_num_threads(threads)
        self.checkpoint = checkpoint
        self.spec = spec_from_checkpoint(checkpoint)
        self.model = InferenceModel(build_policy(checkpoint), checkpoint.stats).eval()

    def predict_chunk(self, image: Frames, state: np.ndarray) -> np.ndarray:
        return predict_with_module(self.model, self.spec, image, state)

    def close(self) -> None:
        pass


def load(path: str | Path, threads: int | None = None, config_path=None, stats_path=None) -> TorchBackend:
    return TorchBackend(load_checkpoint(path, config_path, stats_path), threads=threads)
