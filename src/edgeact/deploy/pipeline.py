"""deploy / rollback / list on a Pi reached through an :class:`SshSession`.

A deploy: hashes checked on the laptop → the Pi's copy (if any) hashed on the Pi → only a
missing or damaged bundle is sent, into ``bundles/.incoming-<id>`` → hashed on the Pi again
→ renamed to ``bundles/<id>`` → smoke check with the chosen backend → ``current`` swapped.
Any failure before the swap leaves ``current`` as it was.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from edgeact.bundle import MANIFEST_NAME
from edgeact.deploy import remote
from edgeact.deploy.bundles import LocalBundle, choose_backend
from edgeact.deploy.remote import RemoteInfo
from edgeact.errors import DeployError, RemoteError
from edgeact.ssh import SshSession


@dataclass(frozen=True)
class DeployOptions:
    root: str = remote.DEFAULT_ROOT  # --remote-dir
    backend: str | None = None  # None: the bundle's int8 model when quantized, else fp32 ONNX
    keep: int = remote.DEFAULT_KEEP
    bwlimit_kbps: int | None = None  # cap the copy's bandwidth (shared Wi-Fi)


@dataclass
class DeployReport:
    bundle_id: str
    destination: str
    root: str
    backend: str
    previous: str | None
    sent_files: list[str]
    sent_file_bytes: int
    smoke: dict[str, Any] | None
    removed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def format(self) -> str:
        if self.sent_files:
            sent = f"copied {len(self.sent_files)} files ({self.sent_file_bytes / 1e6:.1f} MB), verified on the Pi"
        else:
            sent = "already on the Pi (verified there), no file sent"
        lines = [f"{self.bundle_id} on {self.destination}: {sent}"]
        if self.smoke:
            hef = f" ({self.smoke['hw_arch']} HEF)" if self.smoke.get("hw_arch") else ""
            lines.append(f"smoke check on the Pi: {self.smoke['backend']}{hef} loads in "
                         f"{self.smoke['load_ms']:.0f} ms, one chunk {tuple(self.smoke['chunk'])} in "
                         f"{self.smoke['latency_ms']:.1f} ms (`edgeact bench` on the Pi for more)")
        lines.append(f"current -> bundles/{self.bundle_id}" + (f" (was {self.previous})" if self.previous else ""))
        if self.removed:
            lines.append(f"removed old bundles: {', '.join(self.removed)}")
        return "\n".join(lines)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def deploy_bundle(session: SshSession, bundle: LocalBundle, options: DeployOptions,
                  log: Callable[[str], None] = print) -> DeployReport:
    """Put a verified ``bundle`` on the Pi and make it ``current`` (see the module docstring)."""
    t0 = time.monotonic()
    bid = bundle.bundle_id
    info = remote.probe(session, options.root, bid)
    backend = choose_backend(bundle, options.backend, info.hailo_device, info.machine)  # the HEF for the Pi's board
    if info.hailo_device and backend in bundle.hefs:
        log(f"the Pi has a {info.hailo_device}: deploying {backend} (the bundle's HEF for it)")
    final = info.bundle_path(bid)
    if info.hashes == bundle.files and info.current == bid and (info.metadata or {}).get("backend") == backend:
        log(f"{bid} is already current on {session.target.destination} (hashes verified there): nothing to do")
        return DeployReport(bid, session.target.destination, info.root, backend, info.current, [], 0, None,
                            seconds=time.monotonic() - t0)
    require_runtime(session, info)
    sent: list[str] = []
    if info.hashes != bundle.files:
        sent = sorted(bundle.files)
        _send(session, info, bundle, options, log)
    try:
        smoke = run_smoke(session, info, bid, backend)
    except RemoteError:  # a failed check or a lost connection: the copy never stays
        if sent and info.current != bid:
            session.run(remote.REMOVE, final)
        raise
    metadata = {"deployed_at": _now(), "backend": backend, "smoke": smoke, "source": str(bundle.path),
                "files": len(bundle.files), "bytes": bundle.total_bytes}
    removed = remote.activate(session, info, bid, metadata, keep=options.keep)
    return DeployReport(bid, session.target.destination, info.root, backend, info.current, sent,
                        sum((bundle.path / n).stat().st_size for n in sent), smoke, removed,
                        seconds=time.monotonic() - t0)


def _send(session: SshSession, info: RemoteInfo, bundle: LocalBundle, options: DeployOptions,
          log: Callable[[str], None]) -> None:
    """Copy the bundle into ``bundles/.incoming-<id>``, hash it on the Pi, rename it to ``bundles/<id>``."""
    bid = bundle.bundle_id
    final = info.bundle_path(bid)
    incoming = f"{info.root}/bundles/{remote.INCOMING_PREFIX}{bid}"
    if info.hashes is not None:
        log(f"{final} on the Pi differs from the bundle ({_differences(bundle.files, info.hashes)}): sending again")
        session.run(remote.REMOVE, incoming)
        session.run(remote.RENAME, final, incoming)
    log(f"sending {bid} ({bundle.total_bytes / 1e6:.1f} MB) to {session.target.destination}:{incoming}")
    copy_dest = f"../{info.current}" if info.current and info.current != bid else None
    session.send(bundle.path, sorted(bundle.files), incoming, use_rsync=info.has_rsync, copy_dest=copy_dest,
                 bwlimit_kbps=options.bwlimit_kbps)
    arrived = remote.verify_and_rename(session, incoming, final, bundle.files)
    if arrived is not None:
        session.run(remote.REMOVE, incoming)
        raise DeployError(f"after the copy, {_differences(bundle.files, arrived)} on "
                          f"{session.target.destination} did not match the bundle's sha256 (hashed on the Pi); "
                          f"the copy was removed and current is still {info.current or 'unset'}. Check the "
                          "Pi's SD card and power supply, then deploy again")


def _differences(expected: dict[str, str], found: dict[str, str]) -> str:
    names = sorted(n for n in set(expected) | set(found) if expected.get(n) != found.get(n))
    return ", ".join(f"{n} ({'missing' if n not in found else 'extra' if n not in expected else 'sha256 differs'})"
                     for n in names)


def require_runtime(session: SshSession, info: RemoteInfo) -> None:
    """The smoke check needs edgeact on the Pi: say so before anything is copied."""
    if not info.python:
        raise DeployError(f"no python3 on {session.target.destination}: install it (sudo apt install python3 "
                          "python3-venv), then deploy with --setup")
    if not info.runtime:
        raise DeployError(f"edgeact is not installed for {info.python} on {session.target.destination}, so a "
                          f"bundle cannot be checked there: add --setup (installs it into {info.root}/venv)")


def run_smoke(session: SshSession, info: RemoteInfo, bundle_id: str, backend: str) -> dict[str, Any]:
    """Load ``bundle_id`` on the Pi with ``backend`` and time one chunk; DeployError if it fails."""
    require_runtime(session, info)
    result = session.run(remote.SMOKE, info.python, info.bundle_path(bundle_id), backend, check=False, timeout=600)
    lines = result.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else {"error": result.stderr.strip()[-500:]}
    except ValueError:
        answer = {"error": (result.stdout + result.stderr).strip()[-500:]}
    if result.returncode != 0 or "error" in answer:
        raise DeployError(f"smoke check on {session.target.destination} failed, so {bundle_id} was not made "
                          f"current (current is still {info.current or 'unset'}): {answer.get('error')}")
    return answer


def verify_remote_bundle(session: SshSession, info: RemoteInfo, bundle_id: str) -> None:
    """The Pi's copy of ``bundle_id`` against its own manifest (hashed there); DeployError if it differs."""
    path = info.bundle_path(bundle_id)
    hashes = remote.remote_hashes(session, path)
    if hashes is None:
        raise DeployError(f"{path} is not on {session.target.destination}")
    try:
        manifest = json.loads(session.run('cat "$1/manifest.json"', path).stdout)
        expected = {n: e["sha256"] for n, e in manifest["files"].items()}
    except (ValueError, KeyError, RemoteError) as err:
        raise DeployError(f"{path}/{MANIFEST_NAME} on the Pi is unreadable ({err}); deploy the bundle again") from err
    expected[MANIFEST_NAME] = hashes.get(MANIFEST_NAME, "")
    if hashes != expected or not bundle_id.endswith(hashes.get(MANIFEST_NAME, "-")[:12]):
        raise DeployError(f"{path} on {session.target.destination} was changed since it was deployed "
                          f"({_differences(expected, hashes) or 'manifest.json'}); deploy it again instead")


def list_bundles(session: SshSession, root: str) -> tuple[RemoteInfo, list[dict[str, Any]]]:
    """What is on the Pi, newest deploy first."""
    info = remote.probe(session, root)
    bundles = remote.list_bundles(session, info)
    return info, sorted(bundles, key=lambda b: b.get("deployed_at", ""), reverse=True)


def format_list(info: RemoteInfo, bundles: list[dict[str, Any]]) -> str:
    if not bundles:
        return f"no bundles in {info.root}/bundles yet"
    rows = [("", "bundle", "deployed (UTC)", "backend", "chunk ms", "MB")]
    for b in bundles:
        latency = (b.get("smoke") or {}).get("latency_ms")
        rows.append(("*" if b["current"] else "", b["name"], b.get("deployed_at", "?")[:19].replace("T", " "),
                     b.get("backend", "?"), f"{latency:.1f}" if latency is not None else "?",
                     f"{b['bytes'] / 1e6:.1f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines + [f"(* = current, in {info.root})"])


def rollback(session: SshSession, root: str, log: Callable[[str], None] = print) -> tuple[str, str]:
    """Switch ``current`` to the bundle deployed before it (checked and smoke-tested first).

    Returns (previous current, new current). A second rollback goes one further back.
    """
    info, bundles = list_bundles(session, root)
    current = next((b for b in bundles if b["current"]), None)
    if current is None:
        raise DeployError(f"nothing is deployed in {info.root} on {session.target.destination}")
    older = [b for b in bundles if b.get("deployed_at", "") < current.get("deployed_at", "")]
    if not older:
        raise DeployError(f"{current['name']} is the oldest bundle on {session.target.destination}; "
                          f"nothing to roll back to (`edgeact deploy --list` shows them)")
    target = older[0]
    verify_remote_bundle(session, info, target["name"])
    backend = target.get("backend") or "auto"
    smoke = run_smoke(session, info, target["name"], backend)
    meta = {k: v for k, v in target.items() if k not in ("name", "current")}
    meta.update(smoke=smoke, rolled_back_at=_now())
    remote.activate(session, info, target["name"], meta)
    log(f"current -> bundles/{target['name']} (was {current['name']}); "
        f"{smoke['backend']} chunk in {smoke['latency_ms']:.1f} ms on the Pi")
    return current["name"], target["name"]
