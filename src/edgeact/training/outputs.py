"""What a training run writes: LeRobot checkpoints, the state to resume from, the log and the loss plot.

``OUT/best`` and ``OUT/last`` are LeRobot pretrained directories (fp32 weights, whatever
precision trained them); ``OUT/training_state.pt`` holds weights, optimizer and step for
``--resume``; ``OUT/log.jsonl`` one line per validation; ``OUT/loss.png`` the curves. Every
file is written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgeact.config import ACTConfig
from edgeact.errors import ConfigError
from edgeact.fileio import atomic_save


def save_checkpoint(policy, stats, path: Path, meta: dict[str, Any]) -> None:
    from edgeact.checkpoint import save_pretrained

    save_pretrained(policy, stats, path, fps=meta["fps"], extra_meta=meta)


def save_training_state(path: Path, policy, optimizer, step: int, best: dict, history: list) -> None:
    import torch

    state = {"policy": policy.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
             "best": best, "history": history}
    atomic_save(path / "training_state.pt", lambda tmp: torch.save(state, tmp))


def resume_state(out: Path) -> tuple[ACTConfig, dict[str, Any]]:
    import torch

    state_file = out / "training_state.pt"
    if not state_file.is_file():
        raise ConfigError(f"--resume: no {state_file}; start without --resume")
    config = ACTConfig.from_json(out / "last" / "config.json")
    return config, torch.load(state_file, map_location="cpu", weights_only=False)


def append_log(out: Path, record: dict[str, float]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "log.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


def coverage(episodes) -> dict[str, Any]:
    """Which tracks and appearance seeds the episodes hold (simulator episodes say so in meta.json)."""
    tracks = sorted({str(e.meta["track"]) for e in episodes if "track" in e.meta})
    seeds = sorted({int(e.meta["appearance_seed"]) for e in episodes if "appearance_seed" in e.meta})
    return {"tracks": tracks, "appearance_seeds": seeds, "episodes": len(episodes)}


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
