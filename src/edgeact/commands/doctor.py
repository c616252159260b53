"""`edgeact doctor`: is this Pi ready to drive? (CPU, governor, temperature, throttling, memory, packages,
camera, serial permissions, realtime, Hailo, room to record), one OK / WARN / FAIL line each with the fix."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from edgeact.doctor import RecordingPlan

    plan = RecordingPlan()
    p = subparsers.add_parser(
        "doctor",
        help="check this Pi for driving: CPU, temperature, throttling, packages, camera, serial, realtime, Hailo, "
        "room to record",
        description="One OK / WARN / FAIL line per check, with the command that fixes it. From the laptop: "
        "edgeact deploy --doctor pi@HOST. Exit status 1 when a check fails.",
    )
    p.add_argument("--root", default="/", help="examine the sysfs/procfs/dev tree under ROOT (default /)")
    p.add_argument("--user", default=None, help="whose device permissions to check (default: you)")
    p.add_argument("--record-dir", default=plan.folder, metavar="DIR",
                   help="where edgeact drive --record will write (default: the user's home)")
    p.add_argument("--record-minutes", type=float, default=plan.minutes, metavar="MIN",
                   help="warn when DIR's disk holds less than this much recording (default %(default)g); the rate "
                   "is measured on the episodes in DIR, else estimated for 360x640 frames")
    p.add_argument("--record-fps", type=float, default=plan.fps, metavar="FPS",
                   help="the recording rate (default %(default)g)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edgeact.doctor import FAIL, RecordingPlan, SystemView, format_checks, run_checks

    view = SystemView(root=Path(args.root)) if args.user is None else SystemView(root=Path(args.root), user=args.user)
    checks = run_checks(view, RecordingPlan(args.record_dir, args.record_minutes, args.record_fps))
    print(format_checks(checks))
    return 1 if any(c.status == FAIL for c in checks) else 0
