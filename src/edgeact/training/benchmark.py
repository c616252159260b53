"""Where training speed comes from: steps/s of the same training loop with each speed-up added in turn.

Every variant trains the same model from the same initial weights on the same batches; only
how the step runs changes (memory layout, optimizer kernel, autocast, where frames come
from), never what the model computes. Variants are timed in interleaved rounds so that load
from other processes on a shared machine spreads over all of them; compare the ratios.

What every variant shares (the frozen batch norm applied on the cheaper side of each
convolution, the one-pass colour augmentation, malloc keeping freed memory as ``edgeact
train`` sets it) is not a variant: ``scripts/compare_training_speed.py`` measures those against
the revision before them.
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Variant:
    name: str
    channels_last: bool
    fused_adamw: bool
    bf16: bool
    frame_cache: bool


BF16 = Variant("+ bf16 autocast (native bf16 only)", True, True, True, False)
VARIANTS = (
    Variant("reference: fp32, NCHW, foreach AdamW, frames decoded per batch", False, False, False, False),
    Variant("+ channels_last (NCHW on the smallest maps)", True, False, False, False),
    Variant("+ fused AdamW", True, True, False, False),
    BF16,
    Variant("+ decoded-frame cache (a batch is an index into it)", True, True, True, True),
)


@dataclass
class VariantTiming:
    variant: Variant
    seconds_per_step: float
    skipped: str = ""  # why the variant did not run


def bench_training(data: str | os.PathLike, *, preset: str = "tiny", steps: int = 20, rounds: int = 3,
                   batch_size: int | None = None, progress=print) -> list[VariantTiming]:
    """Median seconds per step of each :data:`VARIANTS` entry on the episodes in ``data``."""
    import torch

    from edgeact.cpu import keep_freed_memory
    from edgeact.data.dataset import EpisodeDataset, ImageAugment
    from edgeact.data.episodes import load_episodes
    from edgeact.data.stats import compute_stats
    from edgeact.model.act import ACTPolicy
    from edgeact.normalization import make_normalizers
    from edgeact.training.pipeline import CachedFrames, TrainBatches, frame_cache
    from edgeact.training.presets import get_preset, model_config
    from edgeact.training.sampler import GlobalBatchSampler
    from edgeact.training.step import LossModel, TrainStep, make_optimizer, native_bf16

    keep_freed_memory()  # as edgeact train runs
    device = torch.device("cpu")
    episodes = load_episodes(data)
    image_size = get_preset(preset).image_size or episodes[0].image_size
    config = model_config(preset, image_size, episodes[0].states.shape[1], episodes[0].actions.shape[1], False)
    normalizers = make_normalizers(config, compute_stats(episodes))
    dataset = EpisodeDataset(episodes, config.chunk_size, image_size=config.image_size, flip=True)
    size = (int(config.image_size[0]), int(config.image_size[1]))
    cache = frame_cache(episodes, size, Path(data), progress=progress)
    cached = None if cache is None else CachedFrames(cache, np.arange(len(cache.frames)))  # all episodes, in order
    torch.manual_seed(0)
    initial = ACTPolicy(config)
    batch = batch_size or get_preset(preset).batch_size
    bf16 = native_bf16(device)
    timings: dict[Variant, list[float]] = {v: [] for v in VARIANTS}
    steps_of: dict[Variant, TrainStep] = {}
    for v in VARIANTS:
        policy = copy.deepcopy(initial)
        if v.channels_last:
            policy.model.backbone.use_channels_last(config.image_size, device.type)
        if v.fused_adamw:
            optimizer = make_optimizer(policy, config.optimizer_lr, 0.0, device)
        else:
            optimizer = torch.optim.AdamW(policy.optim_param_groups(), lr=config.optimizer_lr, foreach=True)
        steps_of[v] = TrainStep(LossModel(policy), normalizers, optimizer, grad_clip_norm=10.0, state_noise=0.5,
                                autocast=torch.bfloat16 if v.bf16 and bf16 else None, augment=ImageAugment(),
                                channels_last=v.channels_last)
    for r in range(rounds + 1):  # round 0 warms up (first-touch decoding, oneDNN kernel selection)
        for v in VARIANTS:
            if v is BF16 and not bf16 or v.frame_cache and cached is None:
                continue  # without native bf16 the variant is the one before it; the ones after it run in fp32
            sampler = GlobalBatchSampler(len(dataset), batch, seed=r, start_step=0)
            batches = TrainBatches(dataset, sampler, device, frames=cached if v.frame_cache else None, seed=r,
                                   augment=True)
            n = 2 if r == 0 else steps
            t0 = time.perf_counter()
            for _ in range(n):
                steps_of[v](next(batches))
            elapsed = time.perf_counter() - t0
            batches.close()
            if r:
                timings[v].append(elapsed / n)
                progress(f"round {r}/{rounds}: {v.name}: {elapsed / n * 1000:.0f} ms/step")
    out = []
    for v in VARIANTS:
        if not timings[v]:
            why = "no native bf16 (AVX512-BF16/AMX)" if v is BF16 else "no room on the disk for the cache"
            out.append(VariantTiming(v, float("nan"), why))
        else:
            out.append(VariantTiming(v, sorted(timings[v])[len(timings[v]) // 2]))
    return out


def format_table(timings: list[VariantTiming], threads: int) -> str:
    ref = timings[0].seconds_per_step
    lines = [f"training step, {threads} thread(s); ratios against the reference (same run)", "",
             "| variant | ms/step | steps/s | vs reference |", "|---|---|---|---|"]
    for t in timings:
        if t.skipped:
            lines.append(f"| {t.variant.name} | - | - | skipped: {t.skipped} |")
        else:
            lines.append(f"| {t.variant.name} | {t.seconds_per_step * 1000:.0f} | {1 / t.seconds_per_step:.2f} | "
                         f"{ref / t.seconds_per_step:.2f}x |")
    return "\n".join(lines)

