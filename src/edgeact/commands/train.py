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
    from edgeact.training.presets import PRESETS, TINY

    p.add_argument("--preset", default=TINY.name, choices=list(PRESETS),
                   help="; ".join(f"{p.name}: {p.summary}" for p in PRESETS.values()) + " (default %(default)s)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int,
                        help="optimizer steps (default: the preset's, " +
                        ", ".join(f"{p.name} {p.steps}" for p in PRESETS.values()) + ")")
    length.add_argument("--epochs", type=float, help="passes over the training episodes")
    p.add_argument("--size", metavar="HxW",
                   help="frame size the model takes, e.g. 144x256: frames are centre-cropped and resized to it as the "
                        "runtime fits camera frames (default: the preset's, else the data's)")
    p.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int,
                   help="global batch, split over the processes (default: the preset's)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--val-fraction", type=float, default=0.1, help="episodes held out for validation")
    p.add_argument("--eval-every", type=int, default=200, help="steps between validation and checkpoints")
    p.add_argument("--no-augment", action="store_true", help="turn image augmentation off")
    p.add_argument("--flip", dest="flip", action="store_true", default=None,
                   help="mirror half the samples left-right, steering negated (default: on when actions and state "
                   "are steering/throttle)")
    p.add_argument("--no-flip", dest="flip", action="store_false", help="never mirror samples")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="auto: where the device computes bf16 natively, on CUDA the faster of bf16 autocast and fp32 "
                   "(TF32) timed over a few steps, on the CPU bf16; else fp32. Weights and checkpoints stay fp32")
    p.add_argument("--backbone-weights", type=Path,
                   help="torchvision ResNet18 ImageNet state dict (.pth/.safetensors) to start from")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last")
    p.add_argument("--state-noise", type=float,
                   help="std of noise on the normalized state while training (default: the preset's)")
    p.add_argument("--intervention-weight", type=float, default=1.0, metavar="W",
                   help="draw the steps where a person took over (recorded by edgeact drive) W times as often "
                   "(default 1: as often as any other)")
    p.add_argument("--frame-cache", choices=["auto", "off"], default="auto",
                   help="auto: decode every frame once at the model's size into a memory-mapped cache beside the "
                   "episodes (DATA/.edgeact-cache, rebuilt when they change), when it fits on the disk; off: decode "
                   "frames as batches load (default %(default)s)")
    p.add_argument("--frame-cache-dir", type=Path, metavar="DIR", help="where the frame cache lives instead")
    p.add_argument("--workers", type=int, default=0,
                   help="loader processes decoding frames, where there is no frame cache (default 0: this process)")
    p.add_argument("--seed", type=int, default=0)
    dist = p.add_argument_group("several processes (DDP through torchrun; gloo on CPU, NCCL on GPUs)")
    dist.add_argument("--nproc", type=int, default=1, metavar="N",
                      help="processes on this machine, one per GPU (launches torchrun)")
    dist.add_argument("--nnodes", type=int, default=1, metavar="M", help="machines taking part (default 1)")
    dist.add_argument("--node-rank", type=int, default=0, metavar="R", help="this machine's index, 0 .. M-1")
    dist.add_argument("--master", default=None, metavar="HOST:PORT", help="node 0's address and a free port on it")
    p.set_defaults(func=run)


def _train_args(args: argparse.Namespace) -> list[str]:
    """The parsed options as a command line for each torchrun process (launch flags left out)."""
    out = ["--data", str(args.data), "--out", str(args.out), "--preset", args.preset, "--device", args.device,
           "--val-fraction", str(args.val_fraction), "--eval-every", str(args.eval_every), "--precision",
           args.precision, "--workers", str(args.workers), "--seed", str(args.seed),
           "--intervention-weight", str(args.intervention_weight), "--frame-cache", args.frame_cache]
    for flag, value in (("--steps", args.steps), ("--epochs", args.epochs), ("--batch-size", args.batch_size),
                        ("--backbone-weights", args.backbone_weights), ("--state-noise", args.state_noise),
                        ("--size", args.size), ("--frame-cache-dir", args.frame_cache_dir)):
        if value is not None:
            out += [flag, str(value)]
    if args.flip is not None:
        out.append("--flip" if args.flip else "--no-flip")
    out += ["--no-augment"] * args.no_augment + ["--resume"] * args.resume
    return out


def run(args: argparse.Namespace) -> int:
    if args.nproc > 1 or args.nnodes > 1:
        return _launch(args)
    from edgeact.commands.sim import parse_size
    from edgeact.training.loop import TrainConfig, train

    cfg = TrainConfig(
        data=args.data, out=args.out, preset=args.preset, image_size=parse_size(args.size) if args.size else None,
        steps=args.steps, epochs=args.epochs,
        batch_size=args.batch_size, device=args.device, val_fraction=args.val_fraction,
        eval_every=args.eval_every, augment=not args.no_augment, backbone_weights=args.backbone_weights,
        resume=args.resume, num_workers=args.workers, seed=args.seed, state_noise=args.state_noise,
        intervention_weight=args.intervention_weight, flip=args.flip, precision=args.precision,
        frame_cache=args.frame_cache, cache_dir=args.frame_cache_dir,
    )
    train(cfg)
    return 0


def _launch(args: argparse.Namespace) -> int:
    import subprocess

    from edgeact.training.distributed import torchrun_argv

    cmd = torchrun_argv(args.nproc, _train_args(args), nnodes=args.nnodes, node_rank=args.node_rank,
                        master=args.master)
    print("launching: " + " ".join(cmd), flush=True)
    return subprocess.call(cmd)
