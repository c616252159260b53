"""One training step and how it runs: eager, or captured once as a CUDA graph and replayed.

The step: the batch's images augmented on its device (:func:`batch_images`), normalization,
noise on the state, LeRobot's loss under autocast, backward, gradient clipping, AdamW. Its
losses stay on the device as tensors, so the host never waits for the device inside a step:
on CUDA the next batch is gathered and copied while the GPU computes.

Why a CUDA graph: on an H200 the rover preset's step at batch 8 took 29 ms in fp32 and 43–57 ms
with bf16 autocast (GPU-TRAINING-NOTES.md): the GPU waited on the host launching hundreds of
small kernels, and autocast's casts add more. A graph replays the whole step (augmentation,
forward, backward, clipping, fused AdamW) with one launch. It needs fixed shapes and
addresses (the batch is copied into the captured one's tensors) and a capturable optimizer;
DDP's gradient hooks are not captured, so several processes run eagerly. If capture fails,
the step runs eagerly and says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from edgeact.config import ACTION, OBS_IMAGE_PREFIX, OBS_STATE
from edgeact.data.dataset import ImageAugment
from edgeact.errors import ConfigError
from edgeact.training.pipeline import Batch, batch_images

CAMERA_KEY = OBS_IMAGE_PREFIX + "cam_front"
GRAPH_WARMUP_STEPS = 3  # eager steps before capture: cuDNN picks its kernels, AdamW makes its state


class LossModel(torch.nn.Module):
    """The policy with its training loss as ``forward``: DDP syncs gradients through ``forward``."""

    def __init__(self, policy: torch.nn.Module) -> None:
        super().__init__()
        self.policy: Any = policy

    def forward(self, images, state, actions, pad):
        return self.policy.compute_loss(images, state, actions, pad)


def prepare(batch: Batch, normalizers: torch.nn.ModuleDict, augment: ImageAugment | None,
            channels_last: bool = True) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
    """The model's inputs from a batch on its device: images (augmented, normalized), state, actions, pad."""
    image = normalizers[CAMERA_KEY.replace(".", "_")](batch_images(batch, augment))
    if channels_last:  # after normalizing: a per-channel op is slower on the channels-last layout
        image = image.contiguous(memory_format=torch.channels_last)
    state = normalizers[OBS_STATE.replace(".", "_")](batch.state)
    return [image], state, normalizers[ACTION](batch.actions), batch.pad


class TrainStep:
    """``step(batch)`` trains on one batch (on the model's device) and returns its losses as 0-d tensors.

    ``graph``: on CUDA, run :data:`GRAPH_WARMUP_STEPS` eager steps, then capture the step as a CUDA
    graph and replay it for every later batch (the optimizer must be built ``capturable``).
    """

    def __init__(self, model: torch.nn.Module, normalizers: torch.nn.ModuleDict, optimizer: torch.optim.Optimizer, *,
                 grad_clip_norm: float, state_noise: float, autocast: torch.dtype | None,
                 augment: ImageAugment | None, channels_last: bool = True, graph: bool = False,
                 progress: Callable[[str], None] = print) -> None:
        self.model, self.normalizers, self.optimizer = model, normalizers, optimizer
        self.grad_clip_norm, self.state_noise = grad_clip_norm, state_noise
        self.autocast, self.augment, self.channels_last = autocast, augment, channels_last
        self.graph = graph
        self.progress = progress
        self._eager_steps = 0
        self._graph: torch.cuda.CUDAGraph | None = None
        self._static: Batch | None = None
        self._logs: dict[str, torch.Tensor] = {}

    def __call__(self, batch: Batch) -> dict[str, torch.Tensor]:
        if not self.graph:
            return self._run(batch)
        if self._graph is None and self._eager_steps < GRAPH_WARMUP_STEPS:
            self._eager_steps += 1
            return self._on_side_stream(batch)
        if self._graph is None:
            try:
                self._capture(batch)
            except RuntimeError as err:
                self.progress(f"the training step could not be captured as a CUDA graph ({err}); it runs eagerly")
                self.graph = False
                return self._run(batch)
        else:
            assert self._static is not None
            self._static.copy_(batch)
        assert self._graph is not None
        self._graph.replay()
        return {name: value.clone() for name, value in self._logs.items()}  # the next replay overwrites them

    def _run(self, batch: Batch) -> dict[str, torch.Tensor]:
        images, state, actions, pad = prepare(batch, self.normalizers, self.augment, self.channels_last)
        if self.state_noise > 0:
            state = state + self.state_noise * torch.randn_like(state)
        device = state.device.type
        # a graph cannot keep autocast's cache of cast weights across replays
        with torch.autocast(device, dtype=self.autocast or torch.float32, enabled=self.autocast is not None,
                            cache_enabled=not self.graph):
            loss, logs = self.model(images, state, actions, pad)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip_norm)
        self.optimizer.step()
        return logs

    def _on_side_stream(self, batch: Batch) -> dict[str, torch.Tensor]:
        """An eager step on a side stream, as CUDA graph capture wants its warm-up."""
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            logs = self._run(batch)
        torch.cuda.current_stream().wait_stream(side)
        return logs

    def _capture(self, batch: Batch) -> None:
        """Record the step on ``batch``'s tensors (capture runs nothing: the caller replays it)."""
        graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)  # gradients are then allocated in the graph's own memory
        with torch.cuda.graph(graph):
            self._logs = self._run(batch)
        self._static, self._graph = batch, graph


def make_optimizer(policy: Any, lr: float, weight_decay: float, device: torch.device,
                   capturable: bool = False) -> torch.optim.Optimizer:
    """LeRobot's AdamW (backbone with its own learning rate), as the fused kernel where PyTorch has it:
    one pass over all parameters instead of a dozen foreach kernels."""
    fused = device.type in ("cpu", "cuda") and "fused" in torch.optim.AdamW.__init__.__code__.co_varnames
    impl: dict[str, Any] = {"fused": True} if fused else {"foreach": True}
    if capturable:
        impl["capturable"] = True
    return torch.optim.AdamW(policy.optim_param_groups(), lr=lr, weight_decay=weight_decay, **impl)


def use_cuda_graph(device: torch.device, processes: int) -> bool:
    """Whether the step is replayed as a CUDA graph: on CUDA, with one process (DDP runs eagerly)."""
    return device.type == "cuda" and processes == 1


def cuda_settings() -> None:
    """What ``lerobot-train`` sets on CUDA: TF32 for fp32 matmuls and convolutions on Ampere and newer
    (10-bit mantissa products, fp32 sums; weights and checkpoints stay fp32), and cuDNN picking the
    fastest convolution for the fixed input shape."""
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True


def native_bf16(device: torch.device) -> bool:
    """True when ``device`` computes bf16 natively (CUDA with bf16; a CPU with AVX512-BF16 or AMX)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        if check is None or not check():
            return False
        try:
            flags = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
        # oneDNN also "supports" bf16 on plain AVX512 by emulation, which is slower than fp32
        return " avx512_bf16" in flags or " amx_bf16" in flags
    return False


def precision_candidates(precision: str, device: torch.device) -> list[torch.dtype | None]:
    """The autocast dtypes ``precision`` allows on ``device`` (None: plain fp32), the preferred first.

    ``auto`` gives bf16 then fp32 where the device has native bf16 (on CUDA the faster one is
    measured: :func:`measure_precisions`; on the CPU bf16 is taken, 1.4x faster on AVX512-BF16),
    else fp32 alone; weights and checkpoints stay fp32 whatever is chosen.
    """
    if precision not in ("auto", "fp32", "bf16"):
        raise ConfigError(f"unknown precision {precision!r}; use auto, fp32 or bf16")
    if precision == "fp32":
        return [None]
    native = native_bf16(device)
    if precision == "bf16" and not native:
        raise ConfigError(f"--precision bf16: {device.type} has no native bf16 here (it would be emulated, slower "
                          "than fp32); use --precision fp32 or auto")
    return [torch.bfloat16, None] if native else [None]


def precision_name(dtype: torch.dtype | None) -> str:
    return "fp32" if dtype is None else "bf16"


def eager_precision(candidates: list[torch.dtype | None], device: torch.device, batch: int) -> torch.dtype | None:
    """The choice among ``candidates`` without measuring, for an eager step (DDP, or the CPU).

    On the CPU the first (bf16 where native: 1.4x faster on AVX512-BF16, docs/TRAINING.md). On
    CUDA by the batch each process runs, from eager steps on an H200: bf16 autocast was slower
    than fp32 at batch 8 (43–57 vs 29 ms: its cast kernels add to a launch-bound step) and 1.75x
    faster at batch 64 (53 vs 93 ms); 32 is taken as the crossing, which was not measured.
    """
    if device.type == "cuda" and torch.bfloat16 in candidates and None in candidates:
        return torch.bfloat16 if batch >= 32 else None
    return candidates[0]


def measure_precisions(make_step: Callable[[torch.dtype | None], TrainStep], batch: Batch,
                       candidates: list[torch.dtype | None], steps: int = 8) -> dict[str, float]:
    """Seconds per step of each candidate: ``make_step(dtype)`` builds a step over copies of the model
    and optimizer (the real ones are not trained), run on ``batch`` after its warm-up (and capture)."""
    seconds = {}
    for dtype in candidates:
        step = make_step(dtype)
        device = batch.state.device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            for _ in range(GRAPH_WARMUP_STEPS + 1):
                step(batch)
            _synchronize(device)
            started = time.perf_counter()
            for _ in range(steps):
                step(batch)
            _synchronize(device)
        seconds[precision_name(dtype)] = (time.perf_counter() - started) / steps
        del step
    return seconds


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
