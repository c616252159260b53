"""ACT training as LeRobot does it, on rover episodes, on CPU or CUDA.

Loss: L1 over the non-padded chunk + kl_weight * KL of the CVAE latent. Optimizer: AdamW
with a separate backbone learning rate, gradient clipping at 10 (LeRobot's ACT preset).
Output: ``OUT/best`` and ``OUT/last`` LeRobot pretrained directories (LeRobot loads them),
``OUT/training_state.pt`` (weights, optimizer, step) for ``--resume``, ``OUT/log.jsonl`` and ``OUT/loss.png``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeact.config import ACTION, OBS_IMAGE_PREFIX, OBS_STATE, ACTConfig
from edgeact.errors import ConfigError, DataError
from edgeact.fileio import atomic_save
from edgeact.training.presets import TINY, get_preset, model_config

CAMERA_KEY = OBS_IMAGE_PREFIX + "cam_front"


@dataclass
class TrainConfig:
    """How to train; the model itself is described by the ACTConfig it builds."""

    data: Path
    out: Path
    preset: str = TINY.name
    steps: int | None = None  # neither steps nor epochs: the preset's steps
    epochs: float | None = None
    batch_size: int | None = None  # the global batch: summed over all processes under torchrun
    val_fraction: float = 0.1
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    augment: bool = True
    flip: bool | None = None  # mirror half the samples; None: when the data's actions are mirror-symmetric
    precision: str = "auto"  # auto: bf16 autocast where the hardware has native bf16, else fp32
    backbone_weights: Path | None = None
    resume: bool = False
    eval_every: int = 200
    grad_clip_norm: float = 10.0
    state_noise: float | None = None  # None: the preset's
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

    from edgeact.data.dataset import EpisodeDataset, split_episodes
    from edgeact.data.episodes import load_episodes
    from edgeact.data.stats import compute_stats
    from edgeact.model.act import ACTPolicy
    from edgeact.normalization import imagenet_stats, make_normalizers
    from edgeact.training import distributed
    from edgeact.training.batches import GlobalBatchSampler, Prefetcher, spare_core

    torch.manual_seed(cfg.seed)  # the same initial weights in every process
    episodes = load_episodes(cfg.data)
    if len(episodes) < 2:
        raise DataError(f"{cfg.data} holds {len(episodes)} episode(s); training needs at least 2 (one for validation)")
    train_eps, val_eps = split_episodes(episodes, cfg.val_fraction, cfg.seed)
    data_size = episodes[0].image_size
    fps = float(episodes[0].fps)
    state_dim, action_dim = episodes[0].states.shape[1], episodes[0].actions.shape[1]

    if cfg.resume:
        config, state = _resume_state(cfg.out)
    else:
        if ctx.is_main:
            (cfg.out / "log.jsonl").unlink(missing_ok=True)  # a fresh run does not continue an old log
        image_size = get_preset(cfg.preset).image_size or data_size
        config = model_config(cfg.preset, image_size, state_dim, action_dim,
                              cfg.backbone_weights is not None, cfg.overrides)
        state = None
    _check_shapes(config, data_size, state_dim, action_dim, cfg)

    stats = compute_stats(train_eps)
    if cfg.backbone_weights is not None:
        stats[CAMERA_KEY] = imagenet_stats()  # LeRobot's use_imagenet_stats for pretrained backbones
    policy = ACTPolicy(config)
    if cfg.backbone_weights is not None and state is None:
        policy.model.backbone.load_pretrained(cfg.backbone_weights)
    policy.to(device)
    policy.model.backbone.use_channels_last(config.image_size, device.type)
    normalizers = make_normalizers(config, stats).to(device)
    optimizer = torch.optim.AdamW(policy.optim_param_groups(), lr=config.optimizer_lr,
                                  weight_decay=config.optimizer_weight_decay, **_adamw_impl(device))
    flip = _resolve_flip(cfg.flip, train_eps, progress)
    train_set = EpisodeDataset(train_eps, config.chunk_size, image_size=config.image_size, augment=cfg.augment,
                               flip=flip)
    val_set = EpisodeDataset(val_eps, config.chunk_size, image_size=config.image_size, augment=False)
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
    autocast = _autocast_dtype(cfg.precision, device)
    model = _loss_model(policy)
    if ctx.enabled:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    torch.manual_seed(cfg.seed * 1000 + ctx.rank + start_step)  # dropout, augmentation: own draws per rank

    if tuple(config.image_size) != tuple(data_size):
        progress(f"frames are {data_size[0]}x{data_size[1]}; the {cfg.preset} model takes "
                 f"{config.image_size[0]}x{config.image_size[1]}, so they are resized as they load "
                 "(record at that size to skip it; the runtime resizes camera frames the same way)")
    where = f"{ctx.world_size} processes on {device.type}" if ctx.enabled else str(device)
    progress(f"training {cfg.preset} preset: {len(train_eps)} train / {len(val_eps)} val episodes, "
             f"{len(train_set)} samples, image {config.image_size[0]}x{config.image_size[1]}, "
             f"batch {batch_size}, {total_steps} steps on {where}, "
             f"{'bf16 autocast' if autocast else 'fp32'}, horizontal flip {'on' if flip else 'off'}")
    meta = {"fps": fps, "preset": cfg.preset, "train_episodes": [e.name for e in train_eps],
            "val_episodes": [e.name for e in val_eps], "training_data": _coverage(episodes)}
    loader = torch.utils.data.DataLoader(train_set, batch_sampler=sampler, num_workers=cfg.num_workers,
                                         persistent_workers=cfg.num_workers > 0)
    prefetch = cfg.num_workers == 0 and spare_core(torch.get_num_threads())
    batches = Prefetcher(iter(loader)) if prefetch else iter(loader)
    started = time.monotonic()
    step, train_seconds = start_step, 0.0
    bar = _progress_bar(total_steps, start_step) if ctx.is_main else None
    policy.train()
    try:
        while step < total_steps:
            t0 = time.monotonic()
            logs = _train_step(model, normalizers, optimizer, next(batches), device, cfg.grad_clip_norm, state_noise,
                               autocast)
            train_seconds += time.monotonic() - t0
            step += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{logs['loss']:.3f}", l1=f"{logs['l1_loss']:.3f}")
            if step % cfg.eval_every == 0 or step == total_steps:
                logs = distributed.mean_over_ranks(ctx, logs, device)  # the global batch's losses, not rank 0's
                if ctx.is_main:
                    val_l1 = evaluate_l1(policy, normalizers, val_set, device)
                    record = {"step": step, **logs, "val_l1": val_l1, "seconds": time.monotonic() - started}
                    history.append(record)
                    _append_log(cfg.out, record)
                    if val_l1 < best["val_l1"]:
                        best = {"val_l1": val_l1, "step": step}
                        _save(policy, stats, cfg.out / "best", meta | {"step": step, "val_l1": val_l1})
                    _save(policy, stats, cfg.out / "last", meta | {"step": step, "val_l1": val_l1})
                    _save_training_state(cfg.out, policy, optimizer, step, best, history)
                    policy.train()
                    progress(f"step {step}: loss {logs['loss']:.4f}  val action L1 {val_l1:.4f} (real units)")
                distributed.barrier(ctx)  # the others wait while rank 0 validates and writes
    finally:
        if isinstance(batches, Prefetcher):
            batches.close()
    if bar is not None:
        bar.close()
    if ctx.is_main:
        plot_losses(history, cfg.out / "loss.png")
    seconds = time.monotonic() - started
    rate = (step - start_step) / train_seconds if train_seconds > 0 else 0.0
    progress(f"done: best val action L1 {best['val_l1']:.4f} at step {best['step']}; "
             f"model in {cfg.out / 'best'} ({seconds:.0f} s, {rate:.2f} steps/s)")
    return TrainResult(cfg.out, step, best["val_l1"], best["step"], seconds, history, rate)


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


def _loss_model(policy):
    """The policy with its training loss as ``forward``: DDP syncs gradients through ``forward``."""
    import torch

    class LossModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.policy = policy

        def forward(self, images, state, actions, pad):
            return self.policy.compute_loss(images, state, actions, pad)

    return LossModel()


def _train_step(model, normalizers, optimizer, batch, device, grad_clip_norm: float,
                state_noise: float, autocast=None, channels_last: bool = True) -> dict[str, float]:
    import torch

    images, state, actions, pad = _prepare(batch, normalizers, device, channels_last)
    if state_noise > 0:
        state = state + state_noise * torch.randn_like(state)
    with torch.autocast(device.type, dtype=autocast or torch.float32, enabled=autocast is not None):
        loss, logs = model(images, state, actions, pad)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip_norm)
    optimizer.step()
    return logs


def _prepare(batch, normalizers, device, channels_last: bool = True):
    import torch

    image = normalizers[CAMERA_KEY.replace(".", "_")](batch[CAMERA_KEY].to(device, non_blocking=True))
    if channels_last:  # after normalizing: a per-channel op is slower on the channels-last layout
        image = image.contiguous(memory_format=torch.channels_last)
    images = [image]
    state = normalizers[OBS_STATE.replace(".", "_")](batch[OBS_STATE].to(device))
    actions = normalizers[ACTION](batch[ACTION].to(device))
    return images, state, actions, batch["action_is_pad"].to(device)


def _adamw_impl(device) -> dict[str, Any]:
    """The fused AdamW kernel (one pass over all parameters) where PyTorch has it, else foreach."""
    import torch

    if device.type in ("cpu", "cuda") and "fused" in torch.optim.AdamW.__init__.__code__.co_varnames:
        return {"fused": True}
    return {"foreach": True}


def native_bf16(device) -> bool:
    """True when ``device`` computes bf16 natively (CUDA with bf16; a CPU with AVX512-BF16 or AMX)."""
    import torch

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


def _autocast_dtype(precision: str, device):
    """The autocast dtype for ``precision`` (None: plain fp32). Weights and checkpoints stay fp32."""
    import torch

    if precision not in ("auto", "fp32", "bf16"):
        raise ConfigError(f"unknown precision {precision!r}; use auto, fp32 or bf16")
    if precision == "fp32":
        return None
    native = native_bf16(device)
    if precision == "bf16" and not native:
        raise ConfigError(f"--precision bf16: {device.type} has no native bf16 here (it would be emulated, slower "
                          "than fp32); use --precision fp32 or auto")
    return torch.bfloat16 if native else None


def _resolve_flip(flip: bool | None, episodes, progress: Callable[[str], None]) -> bool:
    from edgeact.data.dataset import mirror_signs

    mirrorable = mirror_signs(episodes[0].state_names) is not None
    if flip is None:
        if not mirrorable:
            progress(f"horizontal flip off: the state {list(episodes[0].state_names)} has values with no known mirror")
        return mirrorable
    return flip


def _coverage(episodes) -> dict[str, Any]:
    """Which tracks and appearance seeds the episodes hold (simulator episodes say so in meta.json)."""
    tracks = sorted({str(e.meta["track"]) for e in episodes if "track" in e.meta})
    seeds = sorted({int(e.meta["appearance_seed"]) for e in episodes if "appearance_seed" in e.meta})
    return {"tracks": tracks, "appearance_seeds": seeds, "episodes": len(episodes)}


def evaluate_l1(policy, normalizers, dataset, device, batch_size: int = 64) -> float:
    """Mean |predicted - true| action over non-padded chunk steps, in real units, VAE off."""
    import torch

    policy.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in loader:
            images, state, _, pad = _prepare(batch, normalizers, device)
            pred = normalizers[ACTION].inverse(policy(images, state))
            err = (pred - batch[ACTION].to(device)).abs() * (~pad).unsqueeze(-1)
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
        preset_size = get_preset(cfg.preset).image_size
        if preset_size is None or tuple(preset_size) != tuple(config.image_size):
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


def _save(policy, stats, path: Path, meta: dict[str, Any]) -> None:
    from edgeact.checkpoint import save_pretrained

    save_pretrained(policy, stats, path, fps=meta["fps"], extra_meta=meta)


def _save_training_state(path: Path, policy, optimizer, step: int, best: dict, history: list) -> None:
    import torch

    state = {"policy": policy.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
             "best": best, "history": history}
    atomic_save(path / "training_state.pt", lambda tmp: torch.save(state, tmp))


def _resume_state(out: Path) -> tuple[ACTConfig, dict[str, Any]]:
    import torch

    state_file = out / "training_state.pt"
    if not state_file.is_file():
        raise ConfigError(f"--resume: no {state_file}; start without --resume")
    config = ACTConfig.from_json(out / "last" / "config.json")
    return config, torch.load(state_file, map_location="cpu", weights_only=False)


def _append_log(out: Path, record: dict[str, float]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "log.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


def _progress_bar(total: int, initial: int):
    import sys

    from tqdm import tqdm

    # Redirected to a file, a bar redrawn ten times a second buries the log.
    interval = 0.5 if sys.stderr.isatty() else 30.0
    return tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True, mininterval=interval)


def plot_losses(history: list[dict[str, float]], path: Path) -> None:
    """Training loss and validation action error against step, as a PNG."""
    if not history:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax1.plot(steps, [h["loss"] for h in history], label="loss (L1 + kl·KL)")
    ax1.plot(steps, [h["l1_loss"] for h in history], label="L1 (normalized)")
    ax1.set_yscale("log")
    ax1.set_xlabel("step")
    ax1.legend()
    ax2.plot(steps, [h["val_l1"] for h in history], color="C2")
    ax2.set_xlabel("step")
    ax2.set_ylabel("validation action L1 (real units)")
    fig.tight_layout()
    atomic_save(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
