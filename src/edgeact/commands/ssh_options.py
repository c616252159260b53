"""The connection options `edgeact deploy` and `edgeact data pull` share (not a command itself)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgeact.ssh import SshTarget


def add_connection_options(group: argparse._ArgumentGroup) -> None:
    """--port, --identity, --ssh-config, --bwlimit: the user's OpenSSH does the rest (~/.ssh/config, agent)."""
    group.add_argument("--port", type=int, help="ssh port (default: ~/.ssh/config, else 22)")
    group.add_argument("--identity", type=Path, metavar="KEY", help="private key to use (only this one)")
    group.add_argument("--ssh-config", type=Path, metavar="FILE", help="ssh client config instead of ~/.ssh/config")
    group.add_argument("--bwlimit", type=int, metavar="KBPS", help="limit the copy to KBPS kB/s")


def ssh_target(host: str, args: argparse.Namespace) -> SshTarget:
    from edgeact.ssh import SshTarget

    return SshTarget(host, port=args.port, identity=args.identity, config=args.ssh_config)
