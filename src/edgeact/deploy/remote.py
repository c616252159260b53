"""The Pi side of a deploy: small POSIX sh / python3 snippets, run through :class:`SshSession`.

Layout under the remote root (``~/edgeact`` by default)::

    bundles/<name>-<id>/          one verified bundle; .deploy.json: when, backend, smoke latency
    bundles/.incoming-<name>-<id>/  a copy in progress (resumed by the next deploy)
    current -> bundles/<name>-<id>  what the rover drives; swapped with rename(2), never half-written
    venv/  wheels/  edgeact.service   (--setup, --service)

None of these needs edgeact on the Pi: hashes come from ``sha256sum`` (or python3's
hashlib), the switch is ``ln -s`` + ``mv -T``. Each snippet takes its paths as arguments.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from edgeact.errors import DeployError
from edgeact.ssh import SshSession, remote_path_arg

DEFAULT_ROOT = "~/edgeact"
DEFAULT_KEEP = 5  # bundles kept on the Pi; the current one always is
INCOMING_PREFIX = ".incoming-"

# `hashes DIR`: sha256 of every plain file under DIR (a Hailo part lives in hailo/<mode>/...),
# sorted, skipping dot files and dot folders (ours: metadata, rsync partials), as sha256sum prints
# them; python3's hashlib where coreutils are missing.
HASHES_FN = r"""
hashes() (
  cd "$1" || exit 3
  if command -v sha256sum >/dev/null 2>&1; then
    find . -name '.?*' -prune -o -type f -exec sha256sum -- {} + | LC_ALL=C sort
  else
    python3 -c 'import hashlib, os
out = []
for top, dirs, files in os.walk("."):
    dirs[:] = [d for d in dirs if not d.startswith(".")]
    for n in files:
        if not n.startswith("."):
            h = hashlib.sha256()
            with open(os.path.join(top, n), "rb") as f:
                for b in iter(lambda: f.read(1 << 20), b""):
                    h.update(b)
            out.append(h.hexdigest() + "  " + os.path.join(top, n))
print("\n".join(sorted(out, key=lambda s: s.encode())))' | sed '/^$/d'
  fi
)
"""

# $1 root, $2 (optional) a bundle id: create the layout, say what is there, hash that bundle.
PROBE = HASHES_FN + r"""
set -eu
mkdir -p "$1/bundles"
cd "$1"
echo "root=$(pwd -P)"
echo "user=$(id -un)"
echo "machine=$(uname -m)"
echo "rsync=$(command -v rsync || true)"
if [ -x venv/bin/python ]; then py="$(pwd -P)/venv/bin/python"; else py=$(command -v python3 || true); fi
echo "python=$py"
if [ -n "$py" ]; then echo "runtime=$("$py" -c 'import edgeact; print(edgeact.__version__)' 2>/dev/null || true)"; fi
echo "current=$(readlink current 2>/dev/null || true)"
for d in /sys/bus/pci/devices/*; do
  if [ "$(cat "$d/vendor" 2>/dev/null)" = 0x1e60 ]; then echo "hailo_pci=$(cat "$d/device" 2>/dev/null)"; fi
done
if command -v hailortcli >/dev/null 2>&1; then
  echo "hailo_arch=$(hailortcli fw-control identify 2>/dev/null | sed -n 's/^Device Architecture: *//p' | head -n 1)"
fi
if [ -n "${2:-}" ] && [ -d "bundles/$2" ]; then
  echo "meta=$(cat "bundles/$2/.deploy.json" 2>/dev/null || true)"
  hashes "bundles/$2" | sed 's/^/hash=/'
fi
"""

HASHES = HASHES_FN + 'set -eu; [ -d "$1" ] || exit 3; hashes "$1"'

# $1 a copy, $2 its final name, $3 the expected hashes (as `hashes` prints them): rename only if equal.
VERIFY_RENAME = HASHES_FN + r"""
set -eu
actual=$(hashes "$1")
if [ "$actual" != "$3" ]; then printf '%s\n' "$actual"; exit 5; fi
[ ! -e "$2" ] || { echo "$2 already exists" >&2; exit 3; }
mv -T "$1" "$2"
"""

MKDIR = 'set -eu; mkdir -p "$1"'

# $1 -> $2 by rename(2); refuses to overwrite.
RENAME = r"""
set -eu
[ ! -e "$2" ] || { echo "$2 already exists" >&2; exit 3; }
mv -T "$1" "$2"
"""

REMOVE = 'set -eu; rm -rf -- "$1"'

# $1 root, $2 bundle dir name, $3 metadata JSON: write the metadata, then swap `current`.
ACTIVATE = r"""
set -eu
cd "$1"
[ -d "bundles/$2" ] || { echo "no bundle $2 in $1/bundles" >&2; exit 3; }
printf '%s\n' "$3" > "bundles/$2/.deploy.json.tmp"
mv -f "bundles/$2/.deploy.json.tmp" "bundles/$2/.deploy.json"
ln -sfn "bundles/$2" ".current.$$"
mv -T ".current.$$" current
"""

# JSON list of the bundles: name, metadata, size, which one is current.
LIST = r"""
cd "$1" && python3 -c 'import json, os, sys
current = os.path.basename(os.readlink("current")) if os.path.islink("current") else None
out = []
for name in sorted(os.listdir("bundles")):
    path = os.path.join("bundles", name)
    if name.startswith(".") or not os.path.isdir(path):
        continue
    try:
        with open(os.path.join(path, ".deploy.json")) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        meta = {}
    size = sum(os.path.getsize(os.path.join(top, n)) for top, _, files in os.walk(path) for n in files)
    out.append({"name": name, "current": name == current, "bytes": size, **meta})
print(json.dumps(out))'
"""

# (after ACTIVATE) keep the $4 newest bundles (by deploy time) and the current one; copies in
# progress older than a day go too.
PRUNE = r"""
cd "$1" && python3 -c 'import json, os, shutil, sys, time
keep = int(sys.argv[1])
current = os.path.basename(os.readlink("current")) if os.path.islink("current") else None
def deployed(name):
    try:
        with open(os.path.join("bundles", name, ".deploy.json")) as f:
            return json.load(f).get("deployed_at", "")
    except (OSError, ValueError):
        return ""
names = [n for n in os.listdir("bundles") if not n.startswith(".") and os.path.isdir(os.path.join("bundles", n))]
for name in sorted(names, key=deployed, reverse=True)[keep:]:
    if name != current:
        shutil.rmtree(os.path.join("bundles", name))
        print(name)
for name in os.listdir("bundles"):
    path = os.path.join("bundles", name)
    if name.startswith(".incoming-") and time.time() - os.path.getmtime(path) > 86400:
        shutil.rmtree(path)' "$4"
"""

# Run the smoke check with the Pi's python ($1) on bundle $2 with backend $3.
SMOKE = 'exec "$1" -m edgeact.deploy.smoke "$2" --backend "$3"'


@dataclass(frozen=True)
class RemoteInfo:
    """What the probe found on the Pi."""

    root: str  # absolute, symlinks resolved
    user: str
    has_rsync: bool
    python: str  # the venv's python after --setup, else python3 (empty: none)
    runtime: str  # edgeact's version for that python (empty: not installed)
    current: str | None  # bundle dir name `current` points to
    hashes: dict[str, str] | None = None  # of the bundle asked about, None when it is not there
    metadata: dict[str, Any] | None = None  # its .deploy.json
    hailo_arch: str = ""  # the Hailo device's architecture (hailortcli fw-control identify): HAILO8L, ...
    hailo_pci: str = ""  # its PCI device id when sysfs shows one (0x2864: Hailo-8/8L, 0x45c4: Hailo-10H)
    machine: str = "aarch64"  # uname -m: which CPU backends run fastest there

    def bundle_path(self, name: str) -> str:
        return f"{self.root}/bundles/{name}"

    @property
    def hailo_device(self) -> str | None:
        """The Pi's Hailo architecture: identify's, else what the PCI id allows (a Hailo-8 and a Hailo-8L
        share one, so a HEF must then run on a Hailo-8L); None without a Hailo device."""
        if self.hailo_arch:
            return self.hailo_arch.upper()
        return {"0x2864": "HAILO8L", "0x45c4": "HAILO10H"}.get(self.hailo_pci.lower())


def parse_hashes(lines: list[str]) -> dict[str, str]:
    hashes = {}
    for line in lines:
        digest, _, name = line.partition("  ")
        hashes[name.removeprefix("./")] = digest
    return hashes


def format_hashes(files: dict[str, str]) -> str:
    """As ``hashes`` prints them on the Pi (sorted bytewise, like LC_ALL=C sort)."""
    return "\n".join(sorted(f"{digest}  ./{name}" for name, digest in files.items()))


def parse_probe(text: str) -> RemoteInfo:
    lines = text.splitlines()
    fields = dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("hash="))
    current = fields.get("current") or None
    hashes = metadata = None
    if "meta" in fields:
        hashes = parse_hashes([line[5:] for line in lines if line.startswith("hash=")])
        try:
            metadata = json.loads(fields["meta"])
        except ValueError:
            metadata = {}
    return RemoteInfo(root=fields["root"], user=fields["user"], has_rsync=bool(fields.get("rsync")),
                      python=fields.get("python", ""), runtime=fields.get("runtime", ""),
                      current=current.rsplit("/", 1)[-1] if current else None,
                      hashes=hashes, metadata=metadata, hailo_arch=fields.get("hailo_arch", ""),
                      hailo_pci=fields.get("hailo_pci", ""), machine=fields.get("machine") or "aarch64")


def probe(session: SshSession, root: str, bundle_id: str = "") -> RemoteInfo:
    """Create the layout if needed and read what is there (with ``bundle_id``'s hashes, computed there)."""
    return parse_probe(session.run(PROBE, remote_path_arg(root), bundle_id).stdout)


def remote_hashes(session: SshSession, path: str) -> dict[str, str] | None:
    """{file name: sha256} computed on the Pi; None when ``path`` does not exist."""
    result = session.run(HASHES, path, check=False)
    if result.returncode == 3:
        return None
    if result.returncode != 0:
        raise DeployError(f"hashing {path} on the Pi failed: {result.stderr.strip()}")
    return parse_hashes(result.stdout.splitlines())


def verify_and_rename(session: SshSession, copy: str, final: str, files: dict[str, str]) -> dict[str, str] | None:
    """Hash ``copy`` on the Pi; rename it to ``final`` if it matches ``files``, else return what it holds."""
    result = session.run(VERIFY_RENAME, copy, final, format_hashes(files), check=False)
    if result.returncode == 5:
        return parse_hashes(result.stdout.splitlines())
    if result.returncode != 0:
        raise DeployError(f"checking {copy} on the Pi failed: {result.stderr.strip()}")
    return None


def list_bundles(session: SshSession, info: RemoteInfo) -> list[dict[str, Any]]:
    return json.loads(session.run(LIST, info.root).stdout or "[]")


def activate(session: SshSession, info: RemoteInfo, name: str, metadata: dict[str, Any],
             keep: int | None = None) -> list[str]:
    """Write ``name``'s metadata and point ``current`` at it; with ``keep``, prune to that many
    bundles in the same call. Returns the pruned names."""
    script = ACTIVATE if keep is None else ACTIVATE + PRUNE
    args = [info.root, name, json.dumps(metadata, sort_keys=True)] + ([] if keep is None else [str(keep)])
    return session.run(script, *args).stdout.split()
