"""`edgeact bench-drive --model BUNDLE`: what the drive page costs the control loop (no rover needed).

    edgeact bench-drive --model bundle/ --rate 100 --duration 60
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from edgeact.teleop.session import DriveConfig

    p = subparsers.add_parser(
        "bench-drive",
        help="the drive page's cost: the simulated drive at --rate without and with a headless Chromium on the page",
        description="Two phases of `edgeact drive --camera sim --actuator sim` in auto mode (the policy infers and "
        "drives): without a page, then with a headless Chromium on it streaming video. Prints missed deadlines, "
        "jitter, inference, video latency measured in the page (capture -> drawn), and the CPU the streaming, "
        "the process and the browser used. Needs chromium, chromium-driver and selenium (the dev extra).",
    )
    p.add_argument("--model", required=True, metavar="BUNDLE", help="bundle (its int8 model by default) or 'fake[:MS]'")
    p.add_argument("--backend", default=None, metavar="NAME", help="backend (default auto)")
    p.add_argument("--rate", type=float, default=100.0, metavar="HZ", help="control rate (default 100)")
    p.add_argument("--duration", type=float, default=60.0, metavar="S", help="seconds per phase (default 60)")
    p.add_argument("--video-fps", type=float, default=DriveConfig.video_fps, metavar="FPS",
                   help="the page's video cap (default %(default)g)")
    p.add_argument("--threads", type=int, default=None, help="inference threads (default: physical cores - 1)")
    p.add_argument("--no-page", action="store_true", help="only the phase without the page")
    p.add_argument("--json", default=None, metavar="FILE", help="write the results as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging
    from dataclasses import asdict
    from pathlib import Path

    from edgeact.teleop.bench import bench_drive

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    from edgeact.drive import open_policy

    backend = open_policy(args.model, args.backend, args.threads)
    try:
        result = bench_drive(backend, args.rate, args.duration, args.video_fps, page=not args.no_page)
    finally:
        backend.close()
    print(result.format_table())
    if args.json:
        from edgeact.fileio import atomic_write_json

        atomic_write_json(Path(args.json), asdict(result))
        print(f"wrote {args.json}")
    return 0
