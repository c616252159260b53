"""ACT training as LeRobot does it, on rover episodes, on CPU or CUDA.

Loss: L1 over the non-padded chunk + kl_weight * KL of the CVAE latent. Optimizer: AdamW
with a separate backbone learning rate, gradient clipping at 10 (LeRobot's ACT preset).
Output: ``OUT/best`` and ``OUT/last`` LeRobot pretrained directories (LeRobot loads them),
``OUT/training_state.pt`` (weights, optimizer, step) for ``--resume``, ``OUT/log.jsonl`` and ``OUT/loss.png``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeact.config import ACTION, ACTConfig
from edgeact.errors import ConfigError, DataError
from edgeact.training.outputs import (
    append_log,
    coverage,
    plot_losses,
    resume_state,
    save_checkpoint,
    save_training_state,
)
from edgeact.training.presets import TINY, get_preset, model_config


@dataclass
class TrainConfig:
    """How to train; the model itself is described by the ACTConfig it builds."""

    data: Path
    out: Path
    preset: str = TINY.name
    image_size: tuple[int, int] | None = None  # (H, W) frames are fitted to; None: the preset's, else the data's
    steps: int | None = None  # neither steps nor epochs: the preset's steps
    epochs: float | None = None
    batch_size: int | None = None  # the global batch: summed over all processes under torchrun
    val_fraction: float = 0.1
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0  # loader processes decoding frames, without the frame cache
    augment: bool = True
    flip: bool | None = None  # mirror half the samples; None: when the data's actions are mirror-symmetric
    precision: str = "auto"  # auto: bf16 autocast where the hardware has native bf16, else fp32
    backbone_weights: Path | None = None
    resume: bool = False
    eval_every: int = 200
    grad_clip_norm: float = 10.0
    state_noise: float | None = None  # None: the preset's
    frame_cache: str = "auto"  # auto: decode every frame once into a cache (when it fits on disk); off: per batch
    cache_dir: Path | None = None  # where the frame cache lives; None: DATA/.edgeact-cache
    intervention_weight: float = 1.0  # steps where a person took over (edgeact drive) are drawn this much more often
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainResult:
    out: Path
    steps: int
    best_val_l1: float
    best_step: int
    seconds: float
    history: list[dict[str, float]]
    steps_per_second: float = 0.0  # optimizer steps of this run per wall-clock second, validation excluded


def train(cfg: TrainConfig, progress: Callable[[str], None] = print) -> TrainResult:
    """Train an ACT policy on the episodes in ``cfg.data``; see module docstring for outputs.

    Under torchrun (``WORLD_SIZE`` > 1) every process calls this: DDP splits each global
    batch over the processes and only rank 0 writes. It tunes the process's memory allocator
    for training (:func:`edgeact.cpu.keep_freed_memory`).
    """
    from edgeact.cpu import keep_freed_memory
    from edgeact.training import distributed

    keep_freed_memory()

    ctx = distributed.from_environment()
    device = distributed.init(ctx, _device(cfg.device))
    try:
        return _train(cfg, ctx, device, progress if ctx.is_main else (lambda _: None))
    finally:
        distributed.shutdown(ctx)


def _train(cfg: TrainConfig, ctx, device, progress: Callable[[str], None]) -> TrainResult:
    import torch

    from edgeact.data.dataset import EpisodeDataset, ImageAugment, split_episodes
    from edgeact.data.episodes import load_episodes
    from edgeact.data.stats import compute_stats
    from edgeact.model.act import ACTPolicy
    from edgeact.normalization import imagenet_stats, make_normalizers
    from edgeact.training import distributed
    from edgeact.training.pipeline import TrainBatches, main_process_threads
    from edgeact.training.sampler import GlobalBatchSampler
    from edgeact.training.step import (
        CAMERA_KEY,
        LossModel,
        TrainStep,
        cuda_settings,
        make_optimizer,
        use_cuda_graph,
    )

    torch.manual_seed(cfg.seed)  # the same initial weights in every process
    episodes = load_episodes(cfg.data)
    if len(episodes) < 2:
        raise DataError(f"{cfg.data} holds {len(episodes)} episode(s); training needs at least 2 (one for validation)")
    train_eps, val_eps = split_episodes(episodes, cfg.val_fraction, cfg.seed)
    data_size = episodes[0].image_size
    fps = float(episodes[0].fps)
    state_dim, action_dim = episodes[0].states.shape[1], episodes[0].actions.shape[1]

    if cfg.resume:
        config, state = resume_state(cfg.out)
    else:
        if ctx.is_main:
            (cfg.out / "log.jsonl").unlink(missing_ok=True)  # a fresh run does not continue an old log
        image_size = cfg.image_size or get_preset(cfg.preset).image_size or data_size
        config = model_config(cfg.preset, image_size, state_dim, action_dim,
                              cfg.backbone_weights is not None, cfg.overrides)
        state = None
    _check_shapes(config, data_size, state_dim, action_dim, cfg)
    main_process_threads(device, ctx.local_world_size, cfg.num_workers)
    if device.type == "cuda":
        cuda_settings()

    stats = compute_stats(train_eps)
    if cfg.backbone_weights is not None:
        stats[CAMERA_KEY] = imagenet_stats()  # LeRobot's use_imagenet_stats for pretrained backbones
    policy = ACTPolicy(config)
    if cfg.backbone_weights is not None and state is None:
        policy.model.backbone.load_pretrained(cfg.backbone_weights)
    policy.to(device)
    policy.model.backbone.use_channels_last(config.image_size, device.type)
    normalizers = make_normalizers(config, stats).to(device)
    graph = use_cuda_graph(device, ctx.world_size)
    optimizer = make_optimizer(policy, config.optimizer_lr, config.optimizer_weight_decay, device, capturable=graph)
    flip = _resolve_flip(cfg.flip, train_eps, progress)
    train_set = EpisodeDataset(train_eps, config.chunk_size, image_size=config.image_size, flip=flip)
    val_set = EpisodeDataset(val_eps, config.chunk_size, image_size=config.image_size)
    preset = get_preset(cfg.preset)
    batch_size = cfg.batch_size or preset.batch_size
    state_noise = preset.state_noise if cfg.state_noise is None else cfg.state_noise
    start_step = 0
    best: dict[str, Any] = {"val_l1": math.inf, "step": -1}
    history: list[dict[str, float]] = []
    if state is not None:
        policy.load_state_dict(state["policy"])
        optimizer.load_state_dict(state["optimizer"])
        start_step, best, history = state["step"], state["best"], state["history"]
        progress(f"resuming from step {start_step}")
    sampler = GlobalBatchSampler(len(train_set), batch_size, rank=ctx.rank, world_size=ctx.world_size,
                                 seed=cfg.seed, start_step=start_step,
                                 weights=intervention_weights(train_set, cfg.intervention_weight, progress))
    total_steps = _total_steps(cfg, sampler.batches_per_epoch)
    if start_step >= total_steps:
        raise ConfigError(f"checkpoint is already at step {start_step} >= {total_steps}; ask for more --steps")
    if tuple(config.image_size) != tuple(data_size):
        progress(f"frames are {data_size[0]}x{data_size[1]}; the {cfg.preset} model takes "
                 f"{config.image_size[0]}x{config.image_size[1]}, so they are resized as they are decoded "
                 "(the runtime resizes camera frames the same way)")
    train_frames, val_frames = _frame_sources(cfg, ctx, episodes, train_eps, val_eps, config.image_size, progress)
    batches = TrainBatches(train_set, sampler, device, frames=train_frames, seed=cfg.seed, augment=cfg.augment,
                           workers=cfg.num_workers)
    augment = ImageAugment() if cfg.augment else None

    def make_step(dtype, model=None, opt=None, quiet=False) -> TrainStep:
        return TrainStep(model or LossModel(policy), normalizers, opt or optimizer, grad_clip_norm=cfg.grad_clip_norm,
                         state_noise=state_noise, autocast=dtype, augment=augment, graph=graph,
                         progress=(lambda _: None) if quiet else progress)

    autocast = _choose_precision(cfg, ctx, device, policy, optimizer, batches, make_step, progress)
    model: torch.nn.Module = LossModel(policy)
    if ctx.enabled:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    step_fn = make_step(autocast, model)
    torch.manual_seed(cfg.seed * 1000 + ctx.rank + start_step)  # dropout, VAE, state noise: own draws per rank

    where = f"{ctx.world_size} processes on {device.type}" if ctx.enabled else str(device)
    progress(f"training {cfg.preset} preset: {len(train_eps)} train / {len(val_eps)} val episodes, "
             f"{len(train_set)} samples, image {config.image_size[0]}x{config.image_size[1]}, "
             f"batch {batch_size}, {total_steps} steps on {where}, "
             f"{'bf16 autocast' if autocast else 'fp32'}{', CUDA graph' if graph else ''}, "
             f"horizontal flip {'on' if flip else 'off'}")
    meta = {"fps": fps, "preset": cfg.preset, "train_episodes": [e.name for e in train_eps],
            "val_episodes": [e.name for e in val_eps], "training_data": coverage(episodes)}
    validation = _Validation(cfg.out, policy, normalizers, optimizer, stats, meta, val_set, val_frames, device,
                             best, history)
    step, eval_seconds = start_step, 0.0
    bar = _ProgressBar(total_steps, start_step) if ctx.is_main else None
    policy.train()
    try:
        while step < total_steps:
            logs = step_fn(next(batches))
            step += 1
            if bar is not None:
                bar.update(logs)
            if step % cfg.eval_every == 0 or step == total_steps:
                t0 = time.monotonic()
                # the global batch's losses (the mean over ranks), not rank 0's
                values = distributed.mean_over_ranks(ctx, {k: float(v) for k, v in logs.items()}, device)
                if ctx.is_main:
                    val_l1 = validation(step, values)
                    progress(f"step {step}: loss {values['loss']:.4f}  val action L1 {val_l1:.4f} (real units)")
                distributed.barrier(ctx)  # the others wait while rank 0 validates and writes
                eval_seconds += time.monotonic() - t0
    finally:
        batches.close()
    if bar is not None:
        bar.close()
    if ctx.is_main:
        plot_losses(history, cfg.out / "loss.png")
    seconds = time.monotonic() - validation.started
    train_seconds = seconds - eval_seconds  # the last validation waited for every step's kernels
    rate = (step - start_step) / train_seconds if train_seconds > 0 else 0.0
    best = validation.best
    progress(f"done: best val action L1 {best['val_l1']:.4f} at step {best['step']}; "
             f"model in {cfg.out / 'best'} ({seconds:.0f} s, {rate:.2f} steps/s)")
    return TrainResult(cfg.out, step, best["val_l1"], best["step"], seconds, history, rate)


@dataclass
class _Validation:
    """Rank 0's part of a validation step: the validation L1, the log line, the best and last
    checkpoints and the state to resume from."""

    out: Path
    policy: Any
    normalizers: Any
    optimizer: Any
    stats: dict
    meta: dict[str, Any]
    val_set: Any
    val_frames: Any
    device: Any
    best: dict[str, Any]
    history: list[dict[str, float]]
    started: float = field(default_factory=time.monotonic)

    def __call__(self, step: int, losses: dict[str, float]) -> float:
        val_l1 = evaluate_l1(self.policy, self.normalizers, self.val_set, self.val_frames, self.device)
        record = {"step": step, **losses, "val_l1": val_l1, "seconds": time.monotonic() - self.started}
        self.history.append(record)
        append_log(self.out, record)
        meta = self.meta | {"step": step, "val_l1": val_l1}
        if val_l1 < self.best["val_l1"]:
            self.best = {"val_l1": val_l1, "step": step}
            save_checkpoint(self.policy, self.stats, self.out / "best", meta)
        save_checkpoint(self.policy, self.stats, self.out / "last", meta)
        save_training_state(self.out, self.policy, self.optimizer, step, self.best, self.history)
        self.policy.train()
        return val_l1


def _frame_sources(cfg: TrainConfig, ctx, episodes, train_eps, val_eps, size, progress):
    """The cached frames of the training and validation items, or (None, None) to decode them as they load."""
    from edgeact.training.pipeline import CachedFrames, frame_cache

    cache = frame_cache(episodes, tuple(size), cfg.data, mode=cfg.frame_cache, directory=cfg.cache_dir, ctx=ctx,
                        progress=progress)
    if cache is None:
        return None, None
    position = {id(ep): i for i, ep in enumerate(episodes)}

    def rows(subset):
        return cache.rows([position[id(ep)] for ep in subset], [len(ep) for ep in subset])

    return CachedFrames(cache, rows(train_eps)), CachedFrames(cache, rows(val_eps))


def _choose_precision(cfg: TrainConfig, ctx, device, policy, optimizer, batches, make_step, progress):
    """The autocast dtype (None: fp32). Where ``--precision auto`` leaves a choice on one CUDA process,
    both are timed for a few steps on copies of the model: which is faster depends on the GPU and the
    batch (on an H200, bf16 was slower than fp32 at batch 8 and 1.75x faster at batch 64)."""
    import copy

    from edgeact.training.step import (
        LossModel,
        eager_precision,
        make_optimizer,
        measure_precisions,
        precision_candidates,
    )

    candidates = precision_candidates(cfg.precision, device)
    if len(candidates) == 1:
        return candidates[0]
    if device.type != "cuda" or ctx.enabled:
        return eager_precision(candidates, device, batches.sampler.per_rank)

    def probe(dtype):
        twin = copy.deepcopy(policy)
        opt = make_optimizer(twin, optimizer.defaults["lr"], optimizer.defaults["weight_decay"], device,
                             capturable=True)
        opt.load_state_dict(optimizer.state_dict())
        return make_step(dtype, LossModel(twin), opt, quiet=True)

    seconds = measure_precisions(probe, batches.batch_at(batches.sampler.start_step), candidates)
    choice = min(candidates, key=lambda d: seconds["fp32" if d is None else "bf16"])
    progress("precision auto: " + ", ".join(f"{name} {s * 1000:.1f} ms" for name, s in seconds.items())
             + f" per step measured; training in {'bf16 autocast' if choice else 'fp32'}")
    return choice


def intervention_weights(train_set, weight: float, progress: Callable[[str], None] = print) -> np.ndarray | None:
    """Per-sample draw weights: the steps where a person took over ``weight`` times as likely as the
    others (HG-DAgger's emphasis on corrections); None (plain shuffling) at weight 1 or without
    flagged steps. The global batch sampler draws with them, identically on every process."""
    w = weight
    if not (w > 0 and math.isfinite(w)):
        raise ConfigError(f"--intervention-weight must be a positive number, got {w}")
    if w == 1.0:
        return None
    flags = train_set.intervention_mask()
    if not flags.any():
        progress("no intervention steps in the training episodes: --intervention-weight changes nothing")
        return None
    progress(f"{int(flags.sum())} of {flags.size} training steps are interventions, drawn {w:g}x as often")
    return np.where(flags, w, 1.0)


def _resolve_flip(flip: bool | None, episodes, progress: Callable[[str], None]) -> bool:
    from edgeact.data.dataset import mirror_signs

    mirrorable = mirror_signs(episodes[0].state_names) is not None
    if flip is None:
        if not mirrorable:
            progress(f"horizontal flip off: the state {list(episodes[0].state_names)} has values with no known mirror")
        return mirrorable
    return flip


def evaluate_l1(policy, normalizers, dataset, frames, device, batch_size: int = 64) -> float:
    """Mean |predicted - true| action over non-padded chunk steps, in real units, VAE off."""
    import torch

    from edgeact.training.pipeline import eval_batches
    from edgeact.training.step import prepare

    policy.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in eval_batches(dataset, frames, batch_size):
            batch = batch.to(device)
            images, state, _, pad = prepare(batch, normalizers, augment=None)
            pred = normalizers[ACTION].inverse(policy(images, state))
            err = (pred - batch.actions).abs() * (~pad).unsqueeze(-1)
            total += float(err.sum())
            count += int((~pad).sum()) * pred.shape[-1]
    return total / max(count, 1)


def _check_shapes(config: ACTConfig, data_size, state_dim: int, action_dim: int, cfg: TrainConfig) -> None:
    """Refuse, before the first step, data that does not fit the model."""
    if config.state_dim != state_dim or config.action_dim != action_dim:
        raise DataError(
            f"{cfg.data} has state {state_dim} / action {action_dim} values but the model takes "
            f"{config.state_dim} / {config.action_dim}"
        )
    if cfg.resume and tuple(config.image_size) != tuple(data_size):
        fitted = [tuple(size) for size in (get_preset(cfg.preset).image_size, cfg.image_size) if size]
        if tuple(config.image_size) not in fitted:
            raise DataError(
                f"{cfg.data} has {data_size[0]}x{data_size[1]} frames but the checkpoint in {cfg.out} was trained on "
                f"{config.image_size[0]}x{config.image_size[1]}: record data at that size or train a new model"
            )


def _total_steps(cfg: TrainConfig, batches_per_epoch: int) -> int:
    """Steps to train to; ``batches_per_epoch`` >= 1 (the sampler refuses data smaller than a batch)."""
    if cfg.steps is not None:
        return int(cfg.steps)
    if cfg.epochs is not None:
        return max(1, int(round(cfg.epochs * batches_per_epoch)))
    return get_preset(cfg.preset).steps


def _device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: no CUDA GPU is visible to PyTorch; use --device cpu")
    return torch.device(name)


class _ProgressBar:
    """The step bar, with the loss shown as often as the bar redraws: reading it waits for the device."""

    def __init__(self, total: int, initial: int) -> None:
        import sys

        from tqdm import tqdm

        # Redirected to a file, a bar redrawn ten times a second buries the log.
        interval = 0.5 if sys.stderr.isatty() else 30.0
        self._bar = tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True,
                         mininterval=interval)
        self._shown = time.monotonic()

    def update(self, logs) -> None:
        self._bar.update(1)
        if time.monotonic() - self._shown >= self._bar.mininterval:
            self._bar.set_postfix(loss=f"{float(logs['loss']):.3f}", l1=f"{float(logs['l1_loss']):.3f}")
            self._shown = time.monotonic()

    def close(self) -> None:
        self._bar.close()
