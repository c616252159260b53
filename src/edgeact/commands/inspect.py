"""`edgeact inspect PATH`: what a checkpoint is, what it takes, and what it costs."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "inspect",
        help="summarize a checkpoint: config, features, normalization, parameters, GFLOPs",
        description="Summarize a LeRobot/edgeact checkpoint directory or a .pth file.",
    )
    p.add_argument("path", help="checkpoint directory, export bundle, or .pth/.pt file")
    p.add_argument("--config", help="config.json for a weights-only .pth file")
    p.add_argument("--stats", help="dataset meta/stats.json when the checkpoint carries no stats")
    p.add_argument("--no-flops", action="store_true", help="skip the FLOP count (needs one forward pass)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgeact.inspection import describe

    print(describe(args.path, config_path=args.config, stats_path=args.stats, flops=not args.no_flops))
    return 0
