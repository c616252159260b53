"""`edgeact <command>`: parses arguments and calls the library; nothing else lives here.

Each command is a module in :mod:`edgeact.commands` with ``register(subparsers)``; heavy
imports (torch, matplotlib) happen inside the command, so ``--help`` is instant and the Pi
runtime works without torch installed.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from edgeact.errors import EdgeactError
from edgeact.version import __version__

COMMAND_MODULES = (
    "inspect",
    "sim",
    "data",
    "train",
    "run",
    "drive",
    "bench_drive",
    "export",
    "quantize",
    "hailo",
    "bench",
    "deploy",
    "doctor",
    "demo",
    "firmware",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgeact",
        description="ACT driving policies from training to a Raspberry Pi 5 rover (CPU int8 or Hailo-8L).",
    )
    parser.add_argument("--version", action="version", version=f"edgeact {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"edgeact.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except EdgeactError as err:
        print(f"edgeact {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"edgeact {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
