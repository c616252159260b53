"""`edgeact train`: train an ACT policy on rover episodes (CPU or CUDA)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train an ACT policy on episodes (LeRobot-compatible output)",
        description="Train ACT as LeRobot does (L1 + KL, AdamW, backbone lr) on rover episodes. "
        "Writes OUT/best and OUT/last (LeRobot pretrained dirs), OUT/log.jsonl and OUT/loss.png.",
    )
    p.add_argument("--data", "--data_dir", dest="data", required=True, type=Path, help="episodes directory")
    p.add_argument("--out", "--output_dir", dest="out", required=True, type=Path, help="output directory")
    from edgeact.train import PRESETS, TINY

    p.add_argument("--preset", default=TINY.name, choices=list(PRESETS),
                   help="; ".join(f"{p.name}: {p.summary}" for p in PRESETS.values()) + " (default %(default)s)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int,
                        help="optimizer steps (default: the preset's, " +
                        ", ".join(f"{p.name} {p.steps}" for p in PRESETS.values()) + ")")
    length.add_argument("--epochs", type=float, help="passes over the training episodes")
    p.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, help="default: the preset's")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--val-fraction", type=float, default=0.1, help="episodes held out for validation")
    p.add_argument("--eval-every", type=int, default=200, help="steps between validation and checkpoints")
    p.add_argument("--no-augment", action="store_true", help="turn image augmentation off")
    p.add_argument("--backbone-weights", type=Path,
                   help="torchvision ResNet18 ImageNet state dict (.pth/.safetensors) to start from")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last")
    p.add_argument("--state-noise", type=float,
                   help="std of noise on the normalized state while training (default: the preset's)")
    p.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgeact.train import TrainConfig, train

    cfg = TrainConfig(
        data=args.data, out=args.out, preset=args.preset, steps=args.steps, epochs=args.epochs,
        batch_size=args.batch_size, device=args.device, val_fraction=args.val_fraction,
        eval_every=args.eval_every, augment=not args.no_augment, backbone_weights=args.backbone_weights,
        resume=args.resume, num_workers=args.workers, seed=args.seed, state_noise=args.state_noise,
    )
    train(cfg)
    return 0
