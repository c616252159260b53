"""One ssh connection to the Pi, shared by every ssh, rsync and scp call of a deploy or a pull.

We drive the user's own OpenSSH client, so their ``~/.ssh/config`` (Host aliases, ports,
ProxyJump), their agent and their keys apply exactly as for ``ssh pi@host``. A control
master (``ssh -M``) carries all commands and copies: one handshake per deploy or pull, and
the master's log gives the bytes that went over the wire. ``BatchMode=yes``: a wrong key or
an unknown host key fails at once with ssh's own reason, never a password prompt or a retry.

``edgeact deploy`` (laptop → Pi) and ``edgeact data pull`` (Pi → laptop) both ride on it, so
it sits low in the tree with the other shared pieces and imports nothing of edgeact but
errors.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from edgeact.errors import RemoteError


@dataclass(frozen=True)
class SshTarget:
    """Where to connect: ``destination`` is what the user would give ``ssh`` (pi@host or an alias)."""

    destination: str
    port: int | None = None
    identity: Path | None = None
    config: Path | None = None  # ssh -F: another client config instead of ~/.ssh/config
    connect_timeout_s: int = 10

    def options(self) -> list[str]:
        """ssh client options, also for scp and rsync's ``-e``."""
        opts: list[str] = ["-F", str(self.config)] if self.config else []
        opts += ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout_s}",
                 "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]
        if self.port:
            opts += ["-o", f"Port={self.port}"]
        if self.identity:
            # The key asked for, not whichever the agent offers first (MaxAuthTries counts those).
            opts += ["-o", f"IdentityFile={self.identity}", "-o", "IdentitiesOnly=yes"]
        return opts


def remote_path_arg(path: str) -> str:
    """A path the Pi's shell resolves the same way ssh/rsync/scp do: ``~/x`` is relative to the home."""
    if path in ("~", "~/"):
        return "."
    return path[2:] if path.startswith("~/") else path


_SCP_BATCH = 200  # files per scp call: a bounded command line
_TRANSFERRED = re.compile(r"Transferred: sent (\d+), received (\d+) bytes")


def explain_ssh_failure(destination: str, log: str) -> str:
    """ssh's reason for failing, with what to do about it."""
    lines = [ln.strip() for ln in log.splitlines() if ln.strip() and not ln.startswith(("debug", "Authenticated"))]
    reason = lines[-1] if lines else "no output"
    if "Permission denied" in log:
        return (f"ssh {destination}: the Pi refused the key ({reason}). edgeact never asks for passwords "
                f"(BatchMode): install your key with `ssh-copy-id {destination}`, or pass --identity KEY, "
                f"then check that `ssh {destination} true` works without a prompt")
    if "Host key verification failed" in log or "REMOTE HOST IDENTIFICATION HAS CHANGED" in log:
        return (f"ssh {destination}: the Pi's host key is unknown or has changed ({reason}); run "
                f"`ssh {destination}` once to check and accept it (after a reinstall: "
                f"`ssh-keygen -R HOST` first)")
    if "Could not resolve hostname" in log:
        return (f"ssh {destination}: {reason}; check the name (raspberrypi.local on most networks) "
                f"or use the Pi's IP address")
    if "Connection refused" in log or "timed out" in log or "No route to host" in log:
        return (f"ssh {destination}: {reason}; is the Pi on and is SSH enabled "
                f"(raspi-config > Interface Options > SSH)? Check the port (--port)")
    return f"ssh {destination} failed: {reason}; check that `ssh {destination} true` works"


class SshSession:
    """A control-master ssh connection; use as a context manager.

    ``run`` executes a POSIX sh script on the Pi; ``send`` copies files to it and ``receive``
    from it (rsync when both ends have it, else scp). ``bytes_sent`` and ``bytes_received``
    are known once the session is closed.
    """

    def __init__(self, target: SshTarget) -> None:
        self.target = target
        self.bytes_sent: int | None = None
        self.bytes_received: int | None = None
        self._dir: Path | None = None
        self._master: subprocess.Popen | None = None

    # -- connection -------------------------------------------------------------------------
    def __enter__(self) -> SshSession:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def _control(self) -> list[str]:
        assert self._dir is not None, "session not open"
        return ["-o", f"ControlPath={self._dir / 'ctl'}", "-o", "ControlMaster=no"]

    def client_options(self) -> list[str]:
        """Options that make ssh/scp/rsync ride on this session's master connection."""
        return [*self.target.options(), *self._control]

    def open(self) -> None:
        if shutil.which("ssh") is None:
            raise RemoteError("ssh is not installed: install OpenSSH's client (apt install openssh-client)")
        # A short path: unix socket paths are limited to ~100 characters.
        self._dir = Path(tempfile.mkdtemp(prefix="edgeact-ssh-"))
        log = self._dir / "master.log"
        cmd = ["ssh", *self.target.options(), "-o", f"ControlPath={self._dir / 'ctl'}", "-o", "ControlMaster=yes",
               "-o", "ControlPersist=no", "-o", "LogLevel=VERBOSE", "-E", str(log), "-N", self.target.destination]
        self._master = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + self.target.connect_timeout_s + 20
        while time.monotonic() < deadline:
            if self._master.poll() is not None:
                text = log.read_text(errors="replace") if log.exists() else ""
                self._cleanup()
                raise RemoteError(explain_ssh_failure(self.target.destination, text))
            if (self._dir / "ctl").exists() and self._check():
                return
            time.sleep(0.05)
        self.close()
        raise RemoteError(f"ssh {self.target.destination}: no connection after {self.target.connect_timeout_s + 20} s")

    def _check(self) -> bool:
        cmd = ["ssh", *self.client_options(), "-O", "check", self.target.destination]
        return subprocess.run(cmd, capture_output=True).returncode == 0

    def close(self) -> None:
        if self._master is None:
            return
        if self._master.poll() is None:
            subprocess.run(["ssh", *self.client_options(), "-O", "exit", self.target.destination],
                           capture_output=True)
            try:
                self._master.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._master.kill()
                self._master.wait()
        log = self._dir / "master.log" if self._dir else None
        if log is not None and log.exists():
            found = _TRANSFERRED.findall(log.read_text(errors="replace"))
            if found:
                self.bytes_sent, self.bytes_received = (int(v) for v in found[-1])
        self._cleanup()

    def _cleanup(self) -> None:
        self._master = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    # -- commands ---------------------------------------------------------------------------
    def run(self, script: str, *args: str, check: bool = True, stream: bool = False,
            timeout: float | None = None, input: str | None = None) -> subprocess.CompletedProcess:
        """Run ``script`` with ``sh -c`` on the Pi, ``args`` as $1, $2, ...

        ``stream``: output goes to this terminal (long steps such as pip show their progress)
        instead of being captured. ``check``: a non-zero exit raises RemoteError with the
        script's stderr. ``input``: the script's stdin (long lists: the remote command line
        is limited to 128 kB).
        """
        remote = shlex.join(["sh", "-c", script, "edgeact", *args])
        cmd = ["ssh", *self.client_options(), self.target.destination, remote]
        stdin = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
        try:
            result = subprocess.run(cmd, text=True, timeout=timeout, capture_output=not stream,
                                    stdout=2 if stream else None, **stdin)
        except subprocess.TimeoutExpired as err:
            raise RemoteError(f"ssh {self.target.destination}: no answer within {timeout:g} s") from err
        if result.returncode == 255:
            raise RemoteError(explain_ssh_failure(self.target.destination, result.stderr or ""))
        if check and result.returncode != 0:
            detail = (result.stderr or "").strip() or "see the output above"
            raise RemoteError(f"on {self.target.destination}: {detail}")
        return result

    def send(self, local_dir: Path, names: list[str], remote_dir: str, use_rsync: bool,
             copy_dest: str | None = None, bwlimit_kbps: int | None = None) -> None:
        """Copy ``names`` from ``local_dir`` into ``remote_dir`` (relative to the Pi's home, or absolute).

        rsync resumes an interrupted copy (``--partial``) and, with ``copy_dest`` (a bundle
        already on the Pi), sends only the files that differ from it.
        """
        if use_rsync and shutil.which("rsync"):
            cmd = ["rsync", "-t", "--checksum", "--partial", "--files-from=-",
                   "-e", shlex.join(["ssh", *self.client_options()])]
            if copy_dest:
                cmd.append(f"--copy-dest={copy_dest}")
            if bwlimit_kbps:
                cmd.append(f"--bwlimit={bwlimit_kbps}")
            if sys.stderr.isatty():
                cmd.append("--info=progress2")
            cmd += [f"{local_dir}/", f"{self.target.destination}:{remote_dir}/"]
            result = subprocess.run(cmd, input="\n".join(names) + "\n", text=True, stderr=subprocess.PIPE)
        else:
            folders: dict[str, list[str]] = {}  # scp puts every file in one folder: one call per sub-folder
            for n in names:
                folders.setdefault(n.rpartition("/")[0], []).append(n)
            self.run('for d in "$@"; do mkdir -p "$d"; done', *(f"{remote_dir}/{f}".rstrip("/") for f in folders))
            for folder, members in sorted(folders.items()):
                cmd = ["scp", "-q", "-p", *self.client_options()]
                if bwlimit_kbps:
                    cmd += ["-l", str(bwlimit_kbps * 8)]  # scp's limit is in Kbit/s
                cmd += [str(local_dir / n) for n in members]
                cmd.append(f"{self.target.destination}:{remote_dir}/{folder}")
                result = subprocess.run(cmd, text=True, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
                if result.returncode != 0:
                    break
        if result.returncode != 0:
            raise RemoteError(f"copying to {self.target.destination}:{remote_dir} failed ({cmd[0]} exit "
                              f"{result.returncode}: {result.stderr.strip()[-300:]}); nothing was switched, "
                              "run the deploy again to resume")

    def receive(self, remote_dir: str, names: list[str], local_dir: Path, use_rsync: bool,
                on_file: Callable[[str], None] | None = None, bwlimit_kbps: int | None = None) -> None:
        """Copy ``names`` (paths under ``remote_dir`` on the Pi, folders included: ``a/b/c.jpg``) into
        the same paths under ``local_dir``; ``on_file(name)`` is called as each one arrives.

        rsync keeps a partly received file (``--partial``) for the next attempt; scp copies
        whole files, one folder per call. Either way, what arrived before an interruption stays
        in ``local_dir``, so the caller asks only for what is still missing.
        """
        notify = on_file or (lambda _name: None)
        if use_rsync and shutil.which("rsync"):
            tool, code, error = "rsync", *self._receive_rsync(remote_dir, names, local_dir, notify, bwlimit_kbps)
        else:
            tool, code, error = "scp", *self._receive_scp(remote_dir, names, local_dir, notify, bwlimit_kbps)
        if code != 0:
            raise RemoteError(f"copying from {self.target.destination}:{remote_dir} failed ({tool} exit {code}: "
                              f"{error.strip()[-300:]}); run the same command again: what arrived is kept")

    def _receive_rsync(self, remote_dir: str, names: list[str], local_dir: Path, notify: Callable[[str], None],
                       bwlimit_kbps: int | None) -> tuple[int, str]:
        cmd = ["rsync", "-t", "--partial", "--files-from=-", "--out-format=%n",
               "-e", shlex.join(["ssh", *self.client_options()])]
        if bwlimit_kbps:
            cmd.append(f"--bwlimit={bwlimit_kbps}")
        cmd += [f"{self.target.destination}:{remote_dir}/", f"{local_dir}/"]
        wanted = set(names)
        with tempfile.TemporaryFile("w+") as errors, subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True) as proc:
            assert proc.stdin is not None and proc.stdout is not None

            def write_list(stdin: IO[str]) -> None:
                with stdin:
                    stdin.write("\n".join(names) + "\n")

            # The list goes in from a thread while the names of the arriving files are read here.
            writer = threading.Thread(target=write_list, args=(proc.stdin,), daemon=True)
            writer.start()
            for line in proc.stdout:  # `--out-format=%n`: one line per file (and folder) written here
                if line.rstrip("\n") in wanted:
                    notify(line.rstrip("\n"))
            writer.join()
            proc.wait()
            errors.seek(0)
            return proc.returncode, errors.read()

    def _receive_scp(self, remote_dir: str, names: list[str], local_dir: Path, notify: Callable[[str], None],
                     bwlimit_kbps: int | None) -> tuple[int, str]:
        by_folder: dict[str, list[str]] = {}
        for name in names:
            by_folder.setdefault(str(Path(name).parent), []).append(name)
        for folder, members in sorted(by_folder.items()):
            (local_dir / folder).mkdir(parents=True, exist_ok=True)
            for start in range(0, len(members), _SCP_BATCH):
                batch = members[start:start + _SCP_BATCH]
                cmd = ["scp", "-q", "-p", *self.client_options()]
                if bwlimit_kbps:
                    cmd += ["-l", str(bwlimit_kbps * 8)]  # scp's limit is in Kbit/s
                cmd += [f"{self.target.destination}:{remote_dir}/{n}" for n in batch]
                cmd.append(f"{local_dir / folder}/")
                result = subprocess.run(cmd, text=True, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
                if result.returncode != 0:
                    return result.returncode, result.stderr
                for name in batch:
                    notify(name)
        return 0, ""
