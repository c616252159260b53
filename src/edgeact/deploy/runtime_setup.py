"""``edgeact deploy --setup``: the runtime on the Pi, in ``<root>/venv``, from a wheel built here.

The Pi never sees our source or needs git: the wheel is built on the laptop and copied.
Its dependencies are the runtime's (numpy, onnxruntime, opencv-python-headless, pyserial,
safetensors) and the ``drive`` extra's (aiohttp, segno: ``edgeact drive`` records on the
Pi), from PyPI (piwheels on Raspberry Pi OS); torch only for a torch backend. With HailoRT on
the Pi (installed by apt into the system Python: ``hailo-all`` for a Hailo-8/8L,
``hailo-h10-all`` for a Hailo-10H), the venv sees the system site-packages and numpy stays
below 2 where that HailoRT needs it (4.x; 5.x below Python 3.13). Which HEF the Pi runs is
chosen by the deploy from the Pi's board (:func:`edgeact.deploy.bundles.choose_backend`). A
marker in the venv records what was installed: a second run with the same wheel changes nothing.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgeact.deploy import remote
from edgeact.errors import DeployError
from edgeact.ssh import SshSession

TORCH_BACKENDS = ("torch", "torch-int8")
MARKER = ".edgeact-setup"

CHECK = r"""
set -eu
cd "$1"
py=$(command -v python3 || true)
echo "python=$py"
[ -n "$py" ] || exit 0
echo "version=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if "$py" -c 'import hailo_platform' 2>/dev/null || command -v hailortcli >/dev/null 2>&1; then
  echo "hailo=yes"
  echo "hailort=$("$py" -c 'import hailo_platform; print(hailo_platform.__version__)' 2>/dev/null || true)"
else
  echo "hailo=no"
fi
echo "installed=$(cat venv/.edgeact-setup 2>/dev/null || true)"
if [ -x venv/bin/python ] && venv/bin/python -c 'import edgeact' 2>/dev/null; then echo "importable=yes"; fi
"""

# $1 root, $2 wheel file name (in $1/wheels), $3 marker, $4 yes/no: system site-packages; then requirements.
INSTALL = r"""
set -eu
root=$1 wheel=$2 marker=$3 system_site=$4
shift 4
cd "$root"
if [ -f venv/pyvenv.cfg ]; then
  have=no
  if grep -qi '^include-system-site-packages *= *true' venv/pyvenv.cfg; then have=yes; fi
  if [ "$have" != "$system_site" ]; then
    echo "recreating $root/venv (system site-packages: $system_site)"
    rm -rf venv
  fi
fi
if [ ! -x venv/bin/python ]; then
  if [ "$system_site" = yes ]; then flags=--system-site-packages; else flags=; fi
  python3 -m venv $flags venv || {
    echo "python3 -m venv failed: install it with sudo apt install python3-venv" >&2; exit 3; }
fi
rm -f venv/.edgeact-setup
venv/bin/python -m pip install --upgrade "wheels/$wheel[drive]" "$@"
# Same version number, new build: pip would keep the old one.
venv/bin/python -m pip install --force-reinstall --no-deps --quiet "wheels/$wheel"
venv/bin/python -c 'import edgeact, numpy, onnxruntime, cv2, serial, safetensors, aiohttp, segno
print("installed edgeact", edgeact.__version__, "| numpy", numpy.__version__, "| onnxruntime", onnxruntime.__version__)'
printf '%s\n' "$marker" > venv/.edgeact-setup
"""


@dataclass(frozen=True)
class SetupReport:
    changed: bool
    seconds: float
    venv: str
    requirements: tuple[str, ...]


def source_tree() -> Path | None:
    """The checkout edgeact runs from (an editable install), if any."""
    from edgeact import version

    root = Path(version.__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() else None


def build_wheel(out_dir: Path, log: Callable[[str], None] = print) -> Path:
    """``pip wheel`` of this checkout into ``out_dir`` (no dependencies: the Pi gets those from its index)."""
    root = source_tree()
    if root is None:
        raise DeployError("--setup builds edgeact's wheel from its source checkout, but this edgeact is not an "
                          "editable install: pass --wheel edgeact-*.whl")
    log(f"building the edgeact wheel from {root}")
    with tempfile.TemporaryDirectory(prefix="edgeact-wheel-build-") as build:
        # From a clean copy: setuptools never empties a checkout's build/, so modules deleted
        # since an earlier build would ship in the wheel (and no build/ is left in the checkout).
        source = Path(build) / "source"
        shutil.copytree(root / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            if (root / name).is_file():
                shutil.copy2(root / name, source / name)
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out_dir), str(source)]
        if _builds_without_isolation():
            cmd.insert(4, "--no-build-isolation")  # no download of setuptools for every build
        result = subprocess.run(cmd, capture_output=True, text=True, cwd=build)
    wheels = sorted(out_dir.glob("edgeact-*.whl"))
    if result.returncode != 0 or not wheels:
        raise DeployError(f"building the edgeact wheel failed: {result.stderr.strip()[-800:]}")
    return wheels[-1]


def _builds_without_isolation() -> bool:
    """Whether this environment's setuptools can build our wheel itself: pyproject asks for >= 68, and
    before 70.1 the ``bdist_wheel`` command came from the separate ``wheel`` package (a venv made by
    Python 3.11 has setuptools 65 and no ``wheel``)."""
    try:
        version = tuple(int(v) for v in re.findall(r"\d+", importlib.metadata.version("setuptools"))[:2])
    except importlib.metadata.PackageNotFoundError:
        return False
    if version >= (70, 1):
        return True
    try:
        importlib.metadata.version("wheel")
    except importlib.metadata.PackageNotFoundError:
        return False
    return version >= (68, 0)


def wheel_digest(wheel: Path) -> str:
    """sha256 over the wheel's member names and contents, not its zip timestamps: a rebuild of the
    same source gives the same digest."""
    digest = hashlib.sha256()
    with zipfile.ZipFile(wheel) as zf:
        for name in sorted(zf.namelist()):
            digest.update(name.encode() + b"\0" + hashlib.sha256(zf.read(name)).digest())
    return digest.hexdigest()


def torch_requirement() -> str:
    """The torch pin of our ``torch`` extra (pyproject.toml is its one definition)."""
    for req in importlib.metadata.requires("edgeact") or []:
        spec, _, marker = req.partition(";")
        if re.match(r"torch\s*[<>=!~]", spec.strip()) and "torch" in marker:
            return spec.strip()
    return "torch"


def requirements_for(backend: str | None, hailo: bool, hailort: str = "", python: str = "3.11") -> tuple[str, ...]:
    """What the venv needs besides the wheel and its dependencies. HailoRT's Python package pins
    numpy<2 in 4.x, and in 5.x below Python 3.13 (its setup.py at v4.23.0 and v5.2.0)."""
    numpy1 = hailo and (not hailort.startswith("5.") or tuple(int(v) for v in python.split(".")[:2]) < (3, 13))
    reqs = ["numpy<2"] if numpy1 else []
    if backend in TORCH_BACKENDS:
        reqs.append(torch_requirement())
    return tuple(reqs)


def setup_runtime(session: SshSession, root: str, backend: str | None, wheel: Path | None = None,
                  log: Callable[[str], None] = print) -> SetupReport:
    """Install or upgrade the runtime in ``<root>/venv`` on the Pi; nothing is done when it is current."""
    t0 = time.monotonic()
    info = remote.probe(session, root)
    found = dict(line.split("=", 1) for line in session.run(CHECK, info.root).stdout.splitlines() if "=" in line)
    if not found.get("python"):
        raise DeployError(f"no python3 on {session.target.destination}: sudo apt install python3 python3-venv")
    if tuple(int(v) for v in found["version"].split(".")) < (3, 10):
        raise DeployError(f"python3 on {session.target.destination} is {found['version']}; edgeact needs 3.10 or "
                          "newer (Raspberry Pi OS bookworm has 3.11)")
    hailo = found.get("hailo") == "yes"
    requirements = requirements_for(backend, hailo, found.get("hailort", ""), found["version"])
    venv = f"{info.root}/venv"
    with tempfile.TemporaryDirectory(prefix="edgeact-wheel-") as tmp:
        wheel = wheel or build_wheel(Path(tmp), log)
        marker = json.dumps({"wheel": wheel_digest(wheel), "requirements": list(requirements),
                             "extras": ["drive"],  # INSTALL's wheel[drive]; a venv set up without it is redone
                             "system_site_packages": hailo}, sort_keys=True)
        if found.get("installed") == marker and found.get("importable") == "yes":
            log(f"runtime in {venv} is up to date (same wheel and requirements): nothing changed")
            return SetupReport(False, time.monotonic() - t0, venv, requirements)
        hailo_note = (f" (HailoRT {found.get('hailort') or ''} found: system site-packages"
                      f"{', numpy<2' if 'numpy<2' in requirements else ''})" if hailo else "")
        log(f"installing the runtime into {venv}{hailo_note}")
        session.run(remote.MKDIR, f"{info.root}/wheels")
        session.send(wheel.parent, [wheel.name], f"{info.root}/wheels", use_rsync=info.has_rsync)
        session.run(INSTALL, info.root, wheel.name, marker, "yes" if hailo else "no", *requirements,
                    stream=True, timeout=3600)
    log(f"runtime ready: {venv}/bin/edgeact")
    return SetupReport(True, time.monotonic() - t0, venv, requirements)
