"""`edgeact bench-drive --model BUNDLE`: what the drive page costs the control loop (no rover needed),
and with ``--minutes N`` whether a long drive stays healthy.

    edgeact bench-drive --model bundle/ --rate 100 --duration 60
    edgeact bench-drive --model bundle/ --minutes 30 --json long.json --plot long.png
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
    long = p.add_argument_group("a long drive (--minutes): memory, latency and the recorder minute by minute")
    long.add_argument("--minutes", type=int, default=None, metavar="N",
                      help="instead of the two phases: one drive of N minutes in auto mode with the page open over "
                      "HTTPS and recording, a row a minute, then the drift of memory and latency")
    long.add_argument("--episode-seconds", type=float, default=30.0, metavar="S",
                      help="with --minutes: recorded episodes of S seconds (default %(default)g)")
    long.add_argument("--record", default=None, metavar="DIR",
                      help="with --minutes: keep the episodes in DIR (default: a temporary folder, removed)")
    long.add_argument("--no-https", action="store_true", help="with --minutes: the page over plain HTTP")
    long.add_argument("--plot", default=None, metavar="FILE.png", help="with --minutes: memory and latency per "
                      "minute (needs matplotlib)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging

    from edgeact.errors import ConfigError

    if not logging.getLogger().handlers:  # a long drive counts the faults in its table: only errors on the side
        level = logging.ERROR if args.minutes is not None else logging.WARNING
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    if args.minutes is not None and (args.minutes < 1 or args.no_page):
        raise ConfigError("--minutes needs at least 1 minute, and the page open (drop --no-page)")
    from edgeact.drive import open_policy

    backend = open_policy(args.model, args.backend, args.threads)
    try:
        table, data = _long_drive(args, backend) if args.minutes is not None else _phases(args, backend)
    finally:
        backend.close()
    print(table)
    if args.json:
        from pathlib import Path

        from edgeact.fileio import atomic_write_json

        atomic_write_json(Path(args.json), data)
        print(f"wrote {args.json}")
    return 0


def _phases(args: argparse.Namespace, backend) -> tuple[str, dict]:
    from dataclasses import asdict

    from edgeact.teleop.bench import bench_drive

    result = bench_drive(backend, args.rate, args.duration, args.video_fps, page=not args.no_page)
    return result.format_table(), asdict(result)


def _long_drive(args: argparse.Namespace, backend) -> tuple[str, dict]:
    from edgeact.teleop.long_drive import long_drive, save_plot

    result = long_drive(backend, args.minutes, args.rate, args.episode_seconds, args.video_fps,
                        https=not args.no_https, record_dir=args.record)
    table = result.format_table()
    if args.plot:
        table += f"\nwrote {save_plot(result, args.plot)}"
    return table, result.to_json()
