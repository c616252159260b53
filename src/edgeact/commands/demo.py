"""`edgeact demo`: the whole pipeline on built-in defaults, in minutes, on a CPU."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    from edgeact.demo import DemoConfig

    p = subparsers.add_parser(
        "demo",
        help="record sim data, train tiny ACT, export, int8, drive the simulator through the runtime",
        description="The main job on built-in defaults: simulator episodes -> tiny ACT -> ONNX -> int8 -> "
        "drive the simulated rover through the realtime runtime (threads, scheduler, simulated Arduino on a "
        "pseudo-terminal) with fp32 and int8. Writes OUT/report.json and OUT/report.md with plots.",
    )
    p.add_argument("--out", type=Path, default=DemoConfig.out, help="output directory (default %(default)s)")
    p.add_argument("--quick", action="store_true", help="seconds instead of minutes (the policy will not drive well)")
    defaults = DemoConfig()
    p.add_argument("--steps", type=int, help=f"training steps (default {defaults.train_steps})")
    p.add_argument("--drive-seconds", type=float,
                   help=f"seconds of driving per backend (default {defaults.drive_seconds:g})")
    p.add_argument("--rate", type=float, help=f"control rate in Hz (default {defaults.rate_hz:g})")
    p.add_argument("--track", choices=["oval", "winding"],
                   help=f"track to record and drive on (default {defaults.track})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from edgeact.demo import DemoConfig, run_demo

    cfg = DemoConfig.quick(args.out) if args.quick else DemoConfig(out=args.out)
    overrides = {"train_steps": args.steps, "drive_seconds": args.drive_seconds, "rate_hz": args.rate,
                 "track": args.track}
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    run_demo(cfg)
    return 0
