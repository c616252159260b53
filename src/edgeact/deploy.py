"""Copy an export bundle to the Pi over SSH (the guide's ``deploy_quantized_model.sh``).

The bundle is checked before anything is sent: a manifest whose hashes do not match the
files would only fail later, on the rover.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edgeact.bundle import hash_files, read_manifest
from edgeact.errors import EdgeactError


@dataclass(frozen=True)
class DeployPlan:
    bundle: Path
    host: str
    dest: str
    commands: list[list[str]]
    run_hint: str


def plan_deploy(bundle: str | Path, host: str, dest: str = "edgeact_model", backend: str | None = None) -> DeployPlan:
    """Verify the bundle and build the ssh/rsync (or scp) commands that copy it to ``host:dest``."""
    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    stale = [
        name for name, entry in hash_files(bundle).items()
        if manifest["files"].get(name, {}).get("sha256") not in (None, entry["sha256"])
    ]
    if stale:
        raise EdgeactError(f"{bundle}: {stale} changed after export (hash mismatch); re-run edgeact export/quantize")
    if not host:
        raise EdgeactError("give the Pi as user@host, e.g. pi@raspberrypi")
    backend = backend or ("onnx-int8" if "onnx-int8" in manifest.get("models", {}) else "onnx")
    mkdir = ["ssh", host, f"mkdir -p {shlex.quote(dest)}"]
    if shutil.which("rsync"):
        copy = ["rsync", "-az", "--delete", f"{bundle}/", f"{host}:{dest}/"]
    else:
        # sub-folders too (hailo/): -r copies them
        items = [str(p) for p in sorted(bundle.iterdir()) if not p.name.startswith(".")]
        copy = ["scp", "-rq", *items, f"{host}:{dest}/"]
    run_hint = (f"ssh {host}\nedgeact run --model {dest} --backend {backend} "
                "--camera 0 --actuator /dev/ttyUSB0 --rate 100")
    return DeployPlan(bundle, host, dest, [mkdir, copy], run_hint)


def deploy(plan: DeployPlan, dry_run: bool = False, log=print) -> None:
    for command in plan.commands:
        log("$ " + shlex.join(command))
        if dry_run:
            continue
        try:
            subprocess.run(command, check=True)
        except FileNotFoundError as err:
            raise EdgeactError(f"{command[0]} is not installed; install OpenSSH (and rsync) first") from err
        except subprocess.CalledProcessError as err:
            raise EdgeactError(f"`{shlex.join(command)}` failed with exit code {err.returncode}; "
                               "check that `ssh HOST` works without a password prompt") from err
    log("on the Pi (pip install edgeact there; torch is not needed):\n" + plan.run_hint)
