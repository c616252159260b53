"""`edgeact deploy BUNDLE HOST`: copy a verified bundle to the Pi."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "deploy",
        help="copy an export bundle to the Pi over SSH (replaces deploy_quantized_model.sh)",
        description="Verify BUNDLE's hashes, copy it to HOST:DEST with rsync (or scp), print the run command.",
    )
    p.add_argument("bundle", help="export bundle (edgeact export / quantize output)")
    p.add_argument("host", help="the Pi, as user@host (e.g. pi@raspberrypi)")
    p.add_argument("--dest", default="edgeact_model", help="directory on the Pi (default ~/edgeact_model)")
    p.add_argument("--backend", help="backend to suggest in the run command (default: int8 if present)")
    p.add_argument("--dry-run", action="store_true", help="print the commands without running them")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgeact.deploy import deploy, plan_deploy

    deploy(plan_deploy(args.bundle, args.host, args.dest, args.backend), dry_run=args.dry_run)
    return 0
