"""`edgeact doctor`: is this Pi ready to drive? (CPU, governor, temperature, throttling, memory, packages,
camera, serial permissions, realtime, Hailo), one OK / WARN / FAIL line each with the fix."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "doctor",
        help="check this Pi for driving: CPU, temperature, throttling, packages, camera, serial, realtime, Hailo",
        description="One OK / WARN / FAIL line per check, with the command that fixes it. From the laptop: "
        "edgeact deploy --doctor pi@HOST. Exit status 1 when a check fails.",
    )
    p.add_argument("--root", default="/", help="examine the sysfs/procfs/dev tree under ROOT (default /)")
    p.add_argument("--user", default=None, help="whose device permissions to check (default: you)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edgeact.doctor import FAIL, SystemView, format_checks, run_checks

    view = SystemView(root=Path(args.root)) if args.user is None else SystemView(root=Path(args.root), user=args.user)
    checks = run_checks(view)
    print(format_checks(checks))
    return 1 if any(c.status == FAIL for c in checks) else 0
