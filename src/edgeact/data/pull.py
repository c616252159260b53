"""``edgeact data pull``: the rover's episodes onto this machine, complete, verified and once only.

::

    with SshSession(SshTarget("pi@raspberrypi")) as session:
        report = pull(session, "episodes", PullOptions(remote_dir="~/edgeact/episodes"))
    print(report.format())

1. List the Pi's folder (:mod:`~edgeact.data.pull_remote`): complete episodes (visible
   folders: the recorder's rename is the signal) with a signature of their files' names,
   sizes and times; folders still being written are named and left alone.
2. An episode pulled before from the same place with the same signature is already here:
   nothing is hashed or sent. The others are hashed on the Pi (sha256sum); one whose
   content is already here under another name is recognized by its digest.
3. The rest are copied into ``OUT/.pull-staging/<source>/<name>/``: only files not already
   there intact, so an interrupted pull resumes where it stopped.
4. Each copy is hashed here and compared with the Pi's hashes; damaged files are fetched
   once more, then the episode is refused. A copy that does not load as an episode (every
   frame decoded) is refused, naming why.
5. A verified episode gets ``.edgeact-pull.json`` (where it came from, its digest) and is
   renamed into ``OUT`` (same file system: atomic), under its own name or, when that name
   is taken here by another episode, the next free ``episode_NNN``.
6. ``delete_after_verify``: episodes verified here (this time, or before and re-hashed here
   now) are deleted on the Pi, each only if its content there is still what was verified
   (:data:`~edgeact.data.pull_remote.DELETE`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgeact.data import pull_remote as remote
from edgeact.data.episodes import Episode, episode_name, next_episode_index, read_episode, validate_frames
from edgeact.data.pull_remote import HashList, Listing, RemoteEpisode
from edgeact.data.view import format_groups, group_episodes, takeovers
from edgeact.errors import DataError
from edgeact.fileio import atomic_write_json
from edgeact.ssh import SshSession

DEFAULT_REMOTE_DIR = "~/edgeact/episodes"
STAGING = ".pull-staging"
RECORD = ".edgeact-pull.json"


@dataclass(frozen=True)
class PullOptions:
    remote_dir: str = DEFAULT_REMOTE_DIR  # on the Pi; ~/ is its home
    delete_after_verify: bool = False
    bwlimit_kbps: int | None = None


@dataclass(frozen=True)
class Pulled:
    remote: str  # its name on the Pi
    local: str  # its name here
    episode: Episode
    bytes: int


@dataclass
class PullReport:
    source: str  # user@host:/path on the Pi
    out: Path
    new: list[Pulled] = field(default_factory=list)
    already_here: list[str] = field(default_factory=list)
    writing: list[tuple[str, float]] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # name -> why
    gone: list[str] = field(default_factory=list)  # deleted on the Pi while this pull ran
    odd: list[str] = field(default_factory=list)
    restored: list[tuple[str, str]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    deleted_bytes: int = 0
    kept_on_pi: dict[str, str] = field(default_factory=dict)  # with delete_after_verify: name -> why
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.refused

    def format(self) -> str:
        lines = [f"{self.source} -> {self.out}"]
        renamed = [f"{p.remote} as {p.local}" for p in self.new if p.remote != p.local]
        names = f": {_names([p.local for p in self.new])}" if self.new else ""
        lines.append(f"  new           {len(self.new)}{names}"
                     + (f" ({', '.join(renamed)}: the name was taken here)" if renamed else ""))
        lines.append(f"  already here  {len(self.already_here)} (unchanged, not sent again)")
        for name, age in self.writing:
            lines.append(f"  skipped       {name}: " + (
                "being recorded; pull again when it ends" if age < 60 else
                f"unfinished, last written {_age(age)} ago: left by a crash (edgeact drive removes it at its "
                "next start)"))
        for name, why in self.refused.items():
            lines.append(f"  refused       {name}: {why}")
        for name in self.gone:
            lines.append(f"  skipped       {name}: deleted on the Pi during the pull")
        for name in self.odd:
            lines.append(f"  skipped       {name!r}: rename it on the Pi to letters, digits, . _ - only")
        for name, new in self.restored:
            lines.append(f"  on the Pi     {name} put back as {new} (an earlier pull was interrupted while deleting)")
        if self.new:
            episodes = [p.episode for p in self.new]
            frames = sum(len(e) for e in episodes)
            flags = [e.interventions for e in episodes if e.interventions is not None]
            steps = int(sum(f.sum() for f in flags))
            count = sum(takeovers(f) for f in flags)
            lines.append(f"new episodes: {sum(e.duration_s for e in episodes) / 60:.1f} min of driving, {frames} "
                         f"frames, {_size(sum(p.bytes for p in self.new))}, {count} takeovers "
                         f"({steps} steps with a person in control)")
            lines.append(format_groups(group_episodes(episodes)))
        if self.deleted or self.kept_on_pi:
            lines.append(f"deleted on the Pi after verification here: {len(self.deleted)} episodes "
                         f"({_size(self.deleted_bytes)})")
            lines += [f"  kept on the Pi {name}: {why}" for name, why in self.kept_on_pi.items()]
        if self.refused:
            lines.append(f"{len(self.refused)} refused: kept on the Pi and out of {self.out}; the next pull tries "
                         "again")
        return "\n".join(lines)


def _names(names: list[str], most: int = 6) -> str:
    return ", ".join(names[:most]) + (f" … ({len(names) - most} more)" if len(names) > most else "")


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def _age(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def pull(session: SshSession, out: str | os.PathLike, options: PullOptions | None = None,
         log: Callable[[str], None] = print) -> PullReport:
    """Pull the complete episodes of ``options.remote_dir`` on the Pi into ``out`` (see the module docstring)."""
    options = options or PullOptions()
    t0 = time.monotonic()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with _exclusive(out):
        listing = remote.probe(session, options.remote_dir)
        report = PullReport(listing.source, out, writing=listing.writing, odd=listing.odd, restored=listing.restored)
        known, to_pull = _sort_out(session, listing, out, report, log)
        staging = out / STAGING / _source_key(listing.source)
        verified = _fetch(session, listing, to_pull, staging, options, log, report)
        for ep, found in verified:
            local = _install(staging / ep.name, out, listing.source, ep, found)
            report.new.append(Pulled(ep.name, local, read_episode(out / local, check_first_frame=False), ep.bytes))
            known[ep.name] = out / local
        shutil.rmtree(staging, ignore_errors=True)  # what is left belongs to no episode still to pull
        if options.delete_after_verify:
            _delete_verified(session, listing, known, {ep.name: found for ep, found in verified}, report)
    report.seconds = time.monotonic() - t0
    return report


def _sort_out(session: SshSession, listing: Listing, out: Path, report: PullReport, log: Callable[[str], None],
              ) -> tuple[dict[str, Path | None], list[tuple[RemoteEpisode, HashList]]]:
    """Which of the Pi's episodes are here already ({name: folder here, or None}), and which to pull."""
    here = LocalEpisodes.scan(out)
    known = {e.name: here.by_signature.get((listing.source, e.name, e.signature)) for e in listing.episodes}
    unknown = [e for e in listing.episodes if known[e.name] is None]
    if unknown:
        log(f"{len(listing.episodes) - len(unknown)} episodes already here; hashing {len(unknown)} on the Pi")
    hashes = remote.hash_episodes(session, listing.root, [e.name for e in unknown])
    to_pull: list[tuple[RemoteEpisode, HashList]] = []
    for ep in unknown:
        found = hashes[ep.name]
        if found is None:
            report.gone.append(ep.name)
        elif (match := here.match(out, listing.source, ep, found)) is not None:
            known[ep.name] = match
        else:
            to_pull.append((ep, found))
    report.already_here = sorted(n for n, local in known.items() if local is not None)
    return known, to_pull


# ---------------------------------------------------------------------- what is here
@dataclass
class LocalEpisodes:
    """The episodes in OUT that a pull brought, by where they came from and by content."""

    by_signature: dict[tuple[str, str, str], Path]  # (source, remote name, signature) -> folder
    by_digest: dict[str, Path]

    @classmethod
    def scan(cls, out: Path) -> LocalEpisodes:
        records = {folder: record for folder in sorted(out.iterdir())
                   if not folder.name.startswith(".") and (record := _read_record(folder))}
        return cls({(r["source"], r["remote_name"], r["signature"]): f for f, r in records.items()
                    if {"source", "remote_name", "signature"} <= set(r)},
                   {r["digest"]: f for f, r in records.items() if "digest" in r})

    def match(self, out: Path, source: str, ep: RemoteEpisode, found: HashList) -> Path | None:
        """The folder here that holds exactly ``ep``'s content, or None. A match gets ``ep``'s signature
        recorded, so the next pull needs no hashing for it."""
        folder = self.by_digest.get(found.digest)
        same_name = out / ep.name
        # copied here some other way (scp, rsync by hand): the same bytes count as pulled
        if (folder is None and same_name.is_dir() and not (same_name / RECORD).exists()
                and remote.digest_of(remote.local_hash_lines(same_name)) == found.digest):
            folder = same_name
        if folder is not None:
            _write_record(folder, source, ep, found)
        return folder


def _read_record(folder: Path) -> dict[str, Any]:
    """A pulled episode's record; {} when there is none or it is unreadable (then it counts as not pulled)."""
    try:
        record = json.loads((folder / RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _write_record(folder: Path, source: str, ep: RemoteEpisode, found: HashList) -> None:
    atomic_write_json(folder / RECORD, {
        "source": source, "remote_name": ep.name, "signature": ep.signature, "digest": found.digest,
        "files": ep.files, "bytes": ep.bytes,
        "pulled_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")})


@contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    """One pull at a time into ``out`` (a second one would race for the same staging files)."""
    (out / STAGING).mkdir(exist_ok=True)
    with open(out / STAGING / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataError(f"another edgeact data pull is writing into {out}; wait for it to end") from None
        yield


def _source_key(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:12]


# ---------------------------------------------------------------------- copy and check
def _fetch(session: SshSession, listing: Listing, to_pull: list[tuple[RemoteEpisode, HashList]], staging: Path,
           options: PullOptions, log: Callable[[str], None],
           report: PullReport) -> list[tuple[RemoteEpisode, HashList]]:
    """Copy ``to_pull`` into ``staging``, verify each copy and load it; refused ones go into ``report``."""
    if not to_pull:
        return []
    staging.mkdir(parents=True, exist_ok=True)
    _transfer(session, listing, to_pull, staging, options, log, first=True)
    differences = {ep.name: found.differences(_local_files(staging / ep.name)) for ep, found in to_pull}
    damaged = [(ep, found) for ep, found in to_pull if differences[ep.name]]
    if damaged:
        log(f"{len(damaged)} copies did not match the Pi's hashes ({_names([ep.name for ep, _ in damaged])}): "
            "fetching those files again")
        _transfer(session, listing, damaged, staging, options, log, first=False)
        differences.update({ep.name: found.differences(_local_files(staging / ep.name)) for ep, found in damaged})
    verified = []
    for ep, found in to_pull:
        folder = staging / ep.name
        if differences[ep.name]:
            report.refused[ep.name] = (f"the copy differs from the Pi's after two tries: "
                                       f"{_names(differences[ep.name], 4)} (check the link, the Pi's card and its "
                                       "power supply)")
            shutil.rmtree(folder, ignore_errors=True)
            continue
        try:
            validate_frames(read_episode(folder))
        except DataError as err:
            on_pi = str(err).replace(str(folder), f"{listing.root}/{ep.name}")
            report.refused[ep.name] = (f"does not load as an episode ({on_pi}); the copy matched the Pi's byte for "
                                       "byte, so the episode is like that on the Pi")
            shutil.rmtree(folder, ignore_errors=True)
            continue
        verified.append((ep, found))
    return verified


def _local_files(folder: Path) -> dict[str, str]:
    return HashList.from_lines(remote.local_hash_lines(folder)).files if folder.is_dir() else {}


def _transfer(session: SshSession, listing: Listing, episodes: list[tuple[RemoteEpisode, HashList]],
              staging: Path, options: PullOptions, log: Callable[[str], None], first: bool) -> None:
    """Ask the Pi for every file of ``episodes`` that ``staging`` does not hold intact; files there that
    the Pi's copy lacks are removed."""
    needed: list[str] = []
    for ep, found in episodes:
        folder = staging / ep.name
        have = _local_files(folder)
        for path, sha in have.items():
            if found.files.get(path) != sha:  # extra, damaged or partly received: never trusted
                (folder / path).unlink()
        needed += [f"{ep.name}/{path[2:]}" for path, sha in found.files.items() if have.get(path) != sha]
    if not needed:
        return
    total = sum(ep.bytes for ep, _ in episodes)
    if first:
        resumed = sum(ep.files for ep, _ in episodes) - len(needed)
        log(f"pulling {len(episodes)} episodes ({_size(total)}) from {session.target.destination}"
            + (f"; {resumed} files already here from an interrupted pull" if resumed else ""))
    progress = _Progress({ep.name: (ep.files, ep.bytes) for ep, _ in episodes}, needed, log)
    session.receive(listing.root, needed, staging, use_rsync=listing.has_rsync, on_file=progress.arrived,
                    bwlimit_kbps=options.bwlimit_kbps)


class _Progress:
    """A line per episode received, and a running total at most every few seconds within a long one."""

    def __init__(self, sizes: dict[str, tuple[int, int]], needed: list[str], log: Callable[[str], None],
                 every_s: float = 5.0) -> None:
        self.sizes = sizes
        self.left = dict.fromkeys(sizes, 0)
        for path in needed:
            self.left[path.split("/", 1)[0]] += 1
        self.total = len(needed)
        self.done = 0
        self.episodes_done = 0
        self.log = log
        self.every_s = every_s
        self.t0 = self.last = time.monotonic()

    def arrived(self, path: str) -> None:
        name = path.split("/", 1)[0]
        self.done += 1
        self.left[name] -= 1
        now = time.monotonic()
        if self.left[name] == 0:
            self.episodes_done += 1
            files, size = self.sizes[name]
            self.log(f"  [{self.episodes_done}/{len(self.sizes)}] {name}: {files} files, {_size(size)}")
            self.last = now
        elif now - self.last >= self.every_s:
            self.log(f"  {self.done}/{self.total} files, {self.done / (now - self.t0):.0f} files/s")
            self.last = now


def _install(folder: Path, out: Path, source: str, ep: RemoteEpisode, found: HashList) -> str:
    """Rename a verified copy into ``out``; its name there (its own, or the next free one if taken)."""
    _write_record(folder, source, ep, found)
    name = ep.name if not (out / ep.name).exists() else episode_name(next_episode_index(out))
    os.rename(folder, out / name)
    return name


# ---------------------------------------------------------------------- freeing the Pi's card
def _delete_verified(session: SshSession, listing: Listing, known: dict[str, Path | None],
                     verified_now: dict[str, HashList], report: PullReport) -> None:
    """Delete on the Pi the episodes that are here and verified; each only if still the same there."""
    digests: dict[str, str] = {}
    for name, folder in sorted(known.items()):
        if folder is None:
            continue
        if name in verified_now:
            digests[name] = verified_now[name].digest
            continue
        # pulled before: the copy here must still be what was verified then
        recorded = _read_record(folder).get("digest")
        if recorded and remote.digest_of(remote.local_hash_lines(folder)) == recorded:
            digests[name] = recorded
        else:
            report.kept_on_pi[name] = (f"the copy here ({folder.name}) no longer matches what was pulled; "
                                       "check it, remove it and pull again")
    sizes = {ep.name: ep.bytes for ep in listing.episodes}
    deletion = remote.delete_verified(session, listing.root, digests)
    report.deleted = deletion.deleted
    report.deleted_bytes = sum(sizes.get(n, 0) for n in deletion.deleted)
    report.kept_on_pi.update(deletion.kept)
    report.gone += [n for n in deletion.gone if n not in report.gone]
