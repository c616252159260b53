"""A real OpenSSH server on 127.0.0.1 playing the Pi: temporary host and client keys, password
login off, and client configs of its own (never ~/.ssh or /etc/ssh). Works as root (CI) and as a
normal user. The "Pi" is a folder on this machine that the tests reach only through ssh.

One server for the whole test session (tests/conftest.py makes ``loopback_pi`` a fixture
everywhere): the deploy tests, the pull tests and the journey share it."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


@dataclass(frozen=True)
class LoopbackPi:
    alias: str  # a Host in `config`, as a user's ~/.ssh/config would have it
    config: Path  # client config with that Host (port, user, key, known hosts)
    plain_config: Path  # client config with known hosts only: for user@127.0.0.1 --port --identity
    key: Path
    wrong_key: Path
    port: int
    user: str
    log: Path  # sshd's log

    def connections(self) -> int:
        return self.log.read_text().count("Connection from 127.0.0.1")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgeact-test", "-f", str(path)], check=True)


def _start_sshd(folder: Path, port: int, extra: str = "") -> subprocess.Popen | None:
    config = folder / "sshd_config"
    config.write_text(f"""\
{extra}Port {port}
ListenAddress 127.0.0.1
HostKey {folder / 'host_key'}
AuthorizedKeysFile {folder / 'authorized_keys'}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
PidFile none
LogLevel VERBOSE
MaxStartups 50
Subsystem sftp /usr/lib/openssh/sftp-server
""")
    with open(folder / "sshd.log", "a") as log:  # sshd keeps its own copy of the descriptor
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None
        if f"Server listening on 127.0.0.1 port {port}" in (folder / "sshd.log").read_text():
            return proc
        time.sleep(0.05)
    proc.kill()
    return None


@pytest.fixture(scope="session")
def loopback_pi(tmp_path_factory) -> LoopbackPi:
    folder = tmp_path_factory.mktemp("sshd")
    proc, pi = start_loopback_pi(folder)
    yield pi
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def bare_pi(tmp_path_factory) -> LoopbackPi:
    """A second server whose sessions find a ``python3`` with the standard library only (a venv made
    without this environment's packages), as on a Pi before ``deploy --setup``; this machine's own
    python3 may have edgeact installed."""
    folder = tmp_path_factory.mktemp("bare-sshd")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder / "python")], check=True)
    bin_dir = folder / "python" / "bin"  # run from here, python3 finds its pyvenv.cfg: no site-packages
    # Every command runs through this wrapper, after the login shell's own files (which may put
    # another python3 first on PATH), so the sessions see this python3 first.
    wrapper = folder / "session.sh"
    wrapper.write_text(f'#!/bin/sh\nPATH={bin_dir}:$PATH\nexport PATH\nexec /bin/sh -c "$SSH_ORIGINAL_COMMAND"\n')
    wrapper.chmod(0o755)
    proc, pi = start_loopback_pi(folder, extra=f"ForceCommand {wrapper}\n")
    yield pi
    proc.terminate()
    proc.wait(timeout=10)


def start_loopback_pi(folder: Path, extra: str = "") -> tuple[subprocess.Popen, LoopbackPi]:
    """Keys, a running sshd on a free port and the client configs to reach it, in ``folder``."""
    if not os.path.exists(SSHD) or shutil.which("ssh") is None:
        pytest.fail("the deploy tests need OpenSSH (server and client): bash scripts/install-test-system-packages.sh")
    if os.geteuid() == 0:
        # sshd refuses to start as root without its privilege separation directory (the Debian unit creates it).
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    _keygen(folder / "host_key")
    _keygen(folder / "client_key")
    _keygen(folder / "wrong_key")
    shutil.copy(folder / "client_key.pub", folder / "authorized_keys")
    proc = port = None
    for _ in range(5):  # a free port can be taken by someone else between the check and the bind
        port = _free_port()
        proc = _start_sshd(folder, port, extra)
        if proc:
            break
    if proc is None:
        pytest.fail(f"sshd did not start: {(folder / 'sshd.log').read_text()[-2000:]}")
    user = getpass.getuser()
    host_key = (folder / "host_key.pub").read_text().split()
    (folder / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
    common = f"""\
  UserKnownHostsFile {folder / 'known_hosts'}
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  IdentitiesOnly yes
"""
    (folder / "ssh_config").write_text(f"Host edgeact-test-pi\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n"
                                       f"  IdentityFile {folder / 'client_key'}\n{common}")
    (folder / "plain_ssh_config").write_text(f"Host *\n{common}")
    return proc, LoopbackPi("edgeact-test-pi", folder / "ssh_config", folder / "plain_ssh_config",
                            folder / "client_key", folder / "wrong_key", port, user, folder / "sshd.log")
