"""The Pi side of ``edgeact data pull``: short POSIX sh / python3 snippets run through :class:`SshSession`.

On the Pi, ``edgeact drive --record DIR`` writes each episode into a hidden
``DIR/.episode_NNN.<random>.tmp`` and renames it to ``DIR/episode_NNN`` when it ends
(:class:`~edgeact.data.episodes.EpisodeWriter`): a visible episode folder is complete and
never written again; a hidden one is being written. Nothing here needs edgeact on the Pi:
python3 lists, ``sha256sum`` hashes, ``mv`` and ``rm`` delete.

An episode's hash list is what ``cd EPISODE && find . -type f … -exec sha256sum`` prints,
sorted bytewise (``./frames/000000.jpg``; hidden files and folders left out), and its
*digest* the sha256 of that text: one 64-character line that stands for every byte of the
episode, computed the same way on the Pi and here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from edgeact.errors import RemoteError
from edgeact.ssh import SshSession, remote_path_arg

# $1 an episode folder: its hash list (hidden files and folders skipped, like the pull skips them).
_EPISODE_HASHES_FN = r"""
episode_hashes() (
  cd "$1" && find . \( -name '.*' ! -name . \) -prune -o -type f -exec sha256sum -- {} + | LC_ALL=C sort
)
"""

_NEED_SHA256SUM = r"""
command -v sha256sum >/dev/null 2>&1 || {
  echo "sha256sum is missing on the Pi; it comes with coreutils: sudo apt install coreutils" >&2; exit 4; }
"""

# $1 the episodes folder. First puts back what a pull interrupted while deleting left in its trash
# (its process gone: checked by pid), then lists: complete episodes with a signature of their files'
# names, sizes and modification times (cheap: no hashing), folders being written, odd names.
PROBE = r"""
cd "$1" 2>/dev/null || { echo "no such folder" >&2; exit 3; }
exec python3 -c '
import getpass, hashlib, json, os, re, shutil, socket, stat, time
plain = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")  # names safe for sh read, rsync lists and scp
now = time.time()
restored = []
for trash in sorted(n for n in os.listdir(".") if n.startswith(".edgeact-pull-trash.")):
    try:
        os.kill(int(trash.rsplit(".", 1)[1]), 0)
        continue  # a pull is deleting there right now
    except (ValueError, ProcessLookupError):
        pass
    except PermissionError:
        continue
    for name in sorted(os.listdir(trash)):
        kept = "%s_restored_%s" % (name, time.strftime("%Y%m%d%H%M%S"))
        os.rename(os.path.join(trash, name), kept)
        restored.append([name, kept])
    os.rmdir(trash)
episodes, writing, odd = [], [], []
for name in sorted(os.listdir(".")):
    if os.path.islink(name) or not os.path.isdir(name):
        continue
    if name.startswith("."):
        if name.startswith(".episode_") and name.endswith(".tmp"):
            newest = max([os.lstat(os.path.join(t, n)).st_mtime for t, _, ns in os.walk(name) for n in ns]
                         + [os.lstat(name).st_mtime])
            writing.append([name[1:].split(".")[0], round(now - newest, 1)])
        continue
    if not (os.path.exists(os.path.join(name, "data.csv")) or os.path.exists(os.path.join(name, "meta.json"))):
        continue
    if not plain.match(name):
        odd.append(name)
        continue
    rows, size = [], 0
    for top, dirs, names in os.walk(name):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for n in names:
            path = os.path.join(top, n)
            st = os.lstat(path)
            if n.startswith(".") or not stat.S_ISREG(st.st_mode):
                continue
            size += st.st_size
            rows.append("%s\0%d\0%d" % (os.path.relpath(path, name), st.st_size, st.st_mtime_ns))
    signature = hashlib.sha256("\n".join(sorted(rows)).encode()).hexdigest()
    episodes.append([name, len(rows), size, signature])
print(json.dumps({"root": os.getcwd(), "user": getpass.getuser(), "host": socket.gethostname(),
                  "rsync": shutil.which("rsync") is not None, "episodes": episodes, "writing": writing,
                  "odd": odd, "restored": restored}))
'
"""

# $1 the episodes folder; stdin: episode names. For each: "== NAME", then its hash list, or "!gone".
HASH = _EPISODE_HASHES_FN + _NEED_SHA256SUM + r"""
set -u
cd "$1" || exit 3
while IFS= read -r name; do
  echo "== $name"
  if [ -d "$name" ]; then episode_hashes "$name"; else echo "!gone"; fi
done
"""

# $1 the episodes folder; stdin: "NAME DIGEST" lines, DIGEST the one verified here. Each episode is
# first renamed into a trash folder of this process (rename(2): from then on nothing else can write
# it or take its place unseen), hashed there, and removed only if it is exactly what was verified;
# otherwise it goes back under a new name that `edgeact drive` never picks (it counts episode_NNN).
DELETE = _EPISODE_HASHES_FN + _NEED_SHA256SUM + r"""
set -u
cd "$1" || exit 3
trash=".edgeact-pull-trash.$$"
mkdir "$trash" || exit 3
while read -r name digest; do
  if ! mv -T -- "$name" "$trash/$name" 2>/dev/null; then echo "gone $name"; continue; fi
  actual=$(episode_hashes "$trash/$name" | sha256sum)
  if [ "${actual%% *}" = "$digest" ]; then
    rm -rf -- "${trash:?}/$name" && echo "deleted $name"
  else
    kept="${name}_restored_$(date +%Y%m%d%H%M%S)"
    mv -T -- "$trash/$name" "$kept" && echo "kept $name $kept"
  fi
done
rmdir "$trash"
"""


@dataclass(frozen=True)
class RemoteEpisode:
    """A complete episode on the Pi, as the probe sees it (no hashing)."""

    name: str
    files: int
    bytes: int
    signature: str  # sha256 of its files' names, sizes and modification times


@dataclass(frozen=True)
class Listing:
    """What is in the Pi's episodes folder."""

    root: str  # absolute, on the Pi
    source: str  # user@host:root, as the pull records it
    has_rsync: bool
    episodes: list[RemoteEpisode]
    writing: list[tuple[str, float]]  # (episode, seconds since its last write)
    odd: list[str]  # episode-like folders whose names a pull does not handle
    restored: list[tuple[str, str]]  # (name, new name): put back from an interrupted delete


@dataclass(frozen=True)
class HashList:
    """An episode's hash list: {"./relative/path": sha256}, and the digest of the list's text."""

    files: dict[str, str]
    digest: str

    @classmethod
    def from_lines(cls, lines: list[str]) -> HashList:
        files = {}
        for line in lines:
            sha, sep, path = line.partition("  ")
            if not sep or len(sha) != 64 or line.startswith("\\"):  # sha256sum escapes odd names with "\"
                raise RemoteError(f"unexpected line from sha256sum on the Pi: {line!r}")
            files[path] = sha
        return cls(files, digest_of(lines))

    def differences(self, other: dict[str, str]) -> list[str]:
        """Files of this list that ``other`` lacks or holds with another hash, and files only in ``other``."""
        names = sorted(n for n in set(self.files) | set(other) if self.files.get(n) != other.get(n))
        return [f"{n[2:]} ({'missing' if n not in other else 'extra' if n not in self.files else 'sha256 differs'})"
                for n in names]


def digest_of(lines: list[str]) -> str:
    """sha256 of a hash list's text, as ``… | LC_ALL=C sort | sha256sum`` computes it on the Pi."""
    return hashlib.sha256("".join(f"{line}\n" for line in sorted(lines)).encode()).hexdigest()


def local_hash_lines(folder: Path) -> list[str]:
    """The hash list of a folder here, in the Pi's format (hidden files and folders skipped)."""
    lines = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or path.is_symlink() or not path.is_file():
            continue
        lines.append(f"{_sha256_file(path)}  ./{rel.as_posix()}")
    return sorted(lines)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def probe(session: SshSession, remote_dir: str) -> Listing:
    result = session.run(PROBE, remote_path_arg(remote_dir), check=False)
    host = session.target.destination
    if result.returncode == 3:
        raise RemoteError(f"there is no folder {remote_dir} on {host}: record into it on the Pi with "
                          f"`edgeact drive … --record {remote_dir}`, or name the folder the episodes are in "
                          f"(edgeact data pull {host} DIR)")
    if result.returncode != 0:
        raise RemoteError(f"listing {remote_dir} on {host} failed: {result.stderr.strip()[-500:]} "
                          "(the Pi needs python3, as Raspberry Pi OS has)")
    found = json.loads(result.stdout)
    return Listing(root=found["root"], source=f"{found['user']}@{found['host']}:{found['root']}",
                   has_rsync=found["rsync"], episodes=[RemoteEpisode(*e) for e in found["episodes"]],
                   writing=[(n, float(age)) for n, age in found["writing"]], odd=found["odd"],
                   restored=[(a, b) for a, b in found["restored"]])


def hash_episodes(session: SshSession, root: str, names: list[str]) -> dict[str, HashList | None]:
    """Each episode's hash list, computed on the Pi with sha256sum; None for one gone meanwhile."""
    if not names:
        return {}
    result = session.run(HASH, root, input="".join(f"{n}\n" for n in names), check=False)
    if result.returncode != 0:
        raise RemoteError(f"hashing the episodes on {session.target.destination} failed: "
                          f"{result.stderr.strip()[-500:]}")
    blocks: dict[str, list[str]] = {}
    current: list[str] = []
    for line in result.stdout.splitlines():
        if line.startswith("== "):
            current = blocks.setdefault(line[3:], [])
        elif line:
            current.append(line)
    return {name: None if blocks.get(name) == ["!gone"] else HashList.from_lines(blocks.get(name, []))
            for name in names}


@dataclass(frozen=True)
class Deletion:
    deleted: list[str]
    kept: dict[str, str]  # name -> why it stayed on the Pi
    gone: list[str]


def delete_verified(session: SshSession, root: str, digests: dict[str, str]) -> Deletion:
    """Delete episodes on the Pi whose content there is still exactly ``digests[name]`` (see DELETE)."""
    if not digests:
        return Deletion([], {}, [])
    result = session.run(DELETE, root, input="".join(f"{n} {d}\n" for n, d in sorted(digests.items())), check=False)
    deleted, kept, gone = [], {}, []
    for line in result.stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word == "deleted":
            deleted.append(rest)
        elif word == "kept":
            name, _, new = rest.partition(" ")
            kept[name] = f"its content on the Pi changed since it was verified here; it is now {new} there"
        elif word == "gone":
            gone.append(rest)
    if result.returncode != 0:
        raise RemoteError(f"deleting verified episodes on {session.target.destination} failed after "
                          f"{len(deleted)} ({result.stderr.strip()[-300:]}); nothing unverified was deleted")
    return Deletion(deleted, kept, gone)
