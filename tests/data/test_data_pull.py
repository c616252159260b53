"""`edgeact data pull` against the real sshd on loopback: the "Pi" is a folder reached only through ssh.

Episodes on the "Pi" are written by the recorder's own writer (EpisodeWriter: a hidden
temporary folder renamed into place), so "complete" means what it means on a rover.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeact.cli import main
from edgeact.data import pull_remote
from edgeact.data.episodes import EpisodeWriter, load_episodes
from edgeact.data.pull import RECORD, STAGING, PullOptions, pull
from edgeact.ssh import SshSession, SshTarget
from polling import wait_for

SESSION = "2025-06-01T14:02:00Z"


def record(root: Path, name: str, steps: int = 10, size=(24, 32), seed: int = 0, noisy: bool = False,
           takeover: slice | None = None) -> Path:
    """One episode as `edgeact drive --record` writes it (state and intervention columns, session meta)."""
    rng = np.random.default_rng(seed)
    writer = EpisodeWriter(root / name, 10, state_names=("steering", "throttle"), intervention_column=True,
                           meta={"source": "edgeact drive", "session": SESSION})
    with writer:
        for i in range(steps):
            frame = (rng.integers(0, 256, (*size, 3)) if noisy else np.full((*size, 3), (seed * 31 + i) % 256))
            person = takeover is not None and takeover.start <= i < takeover.stop
            writer.add(frame.astype(np.uint8), (0.1 * np.sin(i + seed), 0.3), state=(0.0, 0.3), intervention=person)
    return root / name


def half_written(root: Path, name: str) -> EpisodeWriter:
    """An episode being recorded: frames in the writer's hidden folder, no data.csv yet (``close()`` ends it)."""
    writer = EpisodeWriter(root / name, 10)
    for i in range(3):
        writer.add(np.full((24, 32, 3), i, np.uint8), (0.0, 0.2))
    return writer


def session(pi) -> SshSession:
    return SshSession(SshTarget(pi.alias, config=pi.config))


def do_pull(pi, remote: Path, out: Path, **options):
    logged: list[str] = []
    with session(pi) as s:
        report = pull(s, out, PullOptions(remote_dir=str(remote), **options), log=logged.append)
    return report, s.bytes_received, logged


def folder_bytes(*folders: Path) -> int:
    return sum(p.stat().st_size for f in folders for p in f.rglob("*") if p.is_file() and p.name != RECORD)


def test_hash_lists_and_digests_here_are_what_the_pi_computes(tmp_path):
    ep = record(tmp_path, "episode_000")
    (ep / ".hidden").write_text("not part of the episode")
    printed = subprocess.run(["sh", "-c", pull_remote.HASH, "edgeact", str(tmp_path)], input="episode_000\n",
                             capture_output=True, text=True, check=True).stdout.splitlines()
    assert printed[0] == "== episode_000"
    here = pull_remote.local_hash_lines(ep)
    assert printed[1:] == here and len(here) == 10 + 2  # frames, data.csv, meta.json
    shell = subprocess.run(["sh", "-c", "cd \"$1\" && find . \\( -name '.*' ! -name . \\) -prune -o -type f "
                            "-exec sha256sum -- {} + | LC_ALL=C sort | sha256sum", "x", str(ep)],
                           capture_output=True, text=True, check=True).stdout.split()[0]
    assert pull_remote.digest_of(here) == shell  # what DELETE compares on the Pi


def test_complete_episodes_only_and_a_second_pull_moves_only_the_new_ones(loopback_pi, tmp_path):
    pi = tmp_path / "pi" / "episodes"
    for i in range(3):
        record(pi, f"episode_{i:03d}", seed=i, takeover=slice(4, 7) if i == 1 else None)
    writing = half_written(pi, "episode_003")
    (pi / "notes").mkdir()
    (pi / "notes" / "todo.txt").write_text("not an episode")  # no data.csv or meta.json: never pulled
    out = tmp_path / "episodes"
    record(out, "episode_000", seed=99)  # another episode of the same name already here (a simulator one, say)

    report, first_bytes, logged = do_pull(loopback_pi, pi, out)
    assert [(p.remote, p.local) for p in report.new] == [("episode_000", "episode_001"), ("episode_001",
                                                         "episode_002"), ("episode_002", "episode_003")]
    assert [name for name, _ in report.writing] == ["episode_003"] and report.ok
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [f"episode_{i:03d}" for i in range(4)]
    assert len(load_episodes(out, validate=True)) == 4
    assert (out / "episode_001" / "frames").is_dir() and not (out / "notes").exists()
    assert [p.name for p in (out / STAGING).iterdir()] == [".lock"]  # nothing left half-copied
    text = report.format()
    assert "being recorded; pull again when it ends" in text and "episode_000 as episode_001" in text
    assert "1 takeovers (3 steps" in text and "session 2025-06-01 14:02 UTC" in text
    assert any(line.startswith("  [3/3] episode_002") for line in logged)  # progress, an episode at a time
    sent = folder_bytes(*(pi / f"episode_{i:03d}" for i in range(3)))
    assert sent < first_bytes < sent + 60_000

    again, again_bytes, _ = do_pull(loopback_pi, pi, out)
    assert again.new == [] and again.already_here == ["episode_000", "episode_001", "episode_002"]
    assert again_bytes < 20_000  # the listing only: nothing hashed, nothing sent

    writing.close()  # the recording ended: the rename makes it complete
    record(pi, "episode_004", seed=4)
    third, third_bytes, _ = do_pull(loopback_pi, pi, out)
    assert [(p.remote, p.local) for p in third.new] == [("episode_003", "episode_004"), ("episode_004", "episode_005")]
    new = folder_bytes(pi / "episode_003", pi / "episode_004")
    assert new < third_bytes < new + 40_000  # only the two new episodes moved


def test_a_damaged_copy_is_fetched_again_and_refused_if_it_stays_damaged(loopback_pi, tmp_path, monkeypatch):
    pi = tmp_path / "pi"
    record(pi, "episode_000")
    record(pi, "episode_001", seed=1)
    out = tmp_path / "out"
    real_receive = SshSession.receive
    damage = {"times": 1}

    def damaging_receive(self, remote_dir, names, local_dir, use_rsync, **kw):
        real_receive(self, remote_dir, names, local_dir, use_rsync, **kw)
        target = local_dir / "episode_001" / "frames" / "000002.jpg"
        if damage["times"] and target.exists():  # bit rot on the way, same size
            damage["times"] -= 1
            data = bytearray(target.read_bytes())
            data[100] ^= 0xFF
            target.write_bytes(bytes(data))

    monkeypatch.setattr(SshSession, "receive", damaging_receive)
    report, _, logged = do_pull(loopback_pi, pi, out)
    assert [p.local for p in report.new] == ["episode_000", "episode_001"] and report.ok
    assert any("did not match the Pi's hashes (episode_001)" in line for line in logged)
    assert (out / "episode_001" / "frames" / "000002.jpg").read_bytes() == \
        (pi / "episode_001" / "frames" / "000002.jpg").read_bytes()

    record(pi, "episode_002", seed=2)
    damage["times"] = 0
    monkeypatch.setattr(SshSession, "receive", lambda *a, **kw: (real_receive(*a, **kw), _damage(a[3])))
    report, _, _ = do_pull(loopback_pi, pi, out)
    assert report.refused == {"episode_002": "the copy differs from the Pi's after two tries: frames/000002.jpg "
                              "(sha256 differs) (check the link, the Pi's card and its power supply)"}
    assert not (out / "episode_002").exists() and not report.ok

    monkeypatch.setattr(SshSession, "receive", real_receive)
    report, _, _ = do_pull(loopback_pi, pi, out)  # the link is fine again: the next pull takes it
    assert [p.local for p in report.new] == ["episode_002"] and report.ok


def _damage(staging: Path) -> None:
    target = staging / "episode_002" / "frames" / "000002.jpg"
    if target.exists():
        target.write_bytes(target.read_bytes()[:-1] + b"\0")


def test_an_episode_that_does_not_load_is_refused_naming_why(loopback_pi, tmp_path, capsys):
    pi = tmp_path / "pi"
    record(pi, "episode_000")
    broken = record(pi, "episode_001", seed=1)
    (broken / "frames" / "000004.jpg").write_bytes(b"\xff\xd8 truncated on the Pi's card")
    out = tmp_path / "out"
    code = main(["data", "pull", loopback_pi.alias, str(pi), "--out", str(out), "--ssh-config",
                 str(loopback_pi.config)])
    text = capsys.readouterr().out
    assert code == 1  # something was refused
    assert f"refused       episode_001: does not load as an episode (episode_001: frame {broken}/frames/000004.jpg " \
        "is unreadable (not a valid image); re-record or re-import this episode); the copy matched the Pi's byte " \
        "for byte, so the episode is like that on the Pi" in text
    assert "ssh received" in text
    assert (out / "episode_000").is_dir() and not (out / "episode_001").exists()


@pytest.mark.slow
def test_an_interrupted_pull_resumes_and_leaves_no_half_episode(loopback_pi, tmp_path):
    pi = tmp_path / "pi"
    for i in range(3):
        record(pi, f"episode_{i:03d}", steps=12, size=(96, 128), seed=i, noisy=True)  # ~35 kB a frame
    total = folder_bytes(pi)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "edgeact.cli", "data", "pull", loopback_pi.alias, str(pi), "--out", str(out),
           "--ssh-config", str(loopback_pi.config), "--bwlimit", "300"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    staged = out / STAGING
    arrived = lambda: sum(1 for p in staged.rglob("*.jpg")) if staged.exists() else 0  # noqa: E731
    assert wait_for(lambda: arrived() >= 8 or proc.poll() is not None, 60.0)
    assert proc.poll() is None, "the copy ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGKILL)  # the laptop dies mid-copy: ssh master and rsync with it
    proc.wait()
    assert not [p for p in out.iterdir() if not p.name.startswith(".")]  # no episode, whole or half, in OUT
    (source,) = staged.glob("*/")  # one staging folder per Pi and folder
    kept = sum(f.stat().st_size for f in source.rglob("*.jpg")
               if f.read_bytes() == (pi / f.relative_to(source)).read_bytes())
    assert kept > 100_000

    report, received, logged = do_pull(loopback_pi, pi, out)
    assert [p.local for p in report.new] == ["episode_000", "episode_001", "episode_002"] and report.ok
    assert any("already here from an interrupted pull" in line for line in logged)
    assert received < total - kept + 30_000  # what arrived before was not sent again
    assert len(load_episodes(out, validate=True)) == 3


def test_delete_after_verify_deletes_only_episodes_verified_here(loopback_pi, tmp_path, monkeypatch, capsys):
    pi = tmp_path / "pi"
    for i in range(3):
        record(pi, f"episode_{i:03d}", seed=i)
    broken = record(pi, "episode_003", seed=3)
    (broken / "data.csv").write_text("frame,timestamp,steering,throttle\n0,0.0,5.0,0.0\n")  # steering out of range
    writing = half_written(pi, "episode_004")
    out = tmp_path / "out"
    first, _, _ = do_pull(loopback_pi, pi, out)  # no deletion yet
    assert [p.local for p in first.new] == ["episode_000", "episode_001", "episode_002"]

    frame = out / "episode_000" / "frames" / "000000.jpg"
    frame.write_bytes(frame.read_bytes() + b"\0")  # the copy here changed since it was verified
    record(pi, "episode_005", seed=5)
    real_delete = pull_remote.delete_verified

    def a_recording_takes_the_name_first(session, root, digests):
        # between verification and deletion, episode_001 is erased on the Pi and a new recording gets its name
        shutil.rmtree(pi / "episode_001")
        record(pi, "episode_001", seed=42)
        return real_delete(session, root, digests)

    monkeypatch.setattr(pull_remote, "delete_verified", a_recording_takes_the_name_first)
    code = main(["data", "pull", loopback_pi.alias, str(pi), "--out", str(out), "--ssh-config",
                 str(loopback_pi.config), "--delete-after-verify"])
    text = capsys.readouterr().out
    assert code == 1  # episode_003 is refused
    left = sorted(p.name for p in pi.iterdir())
    restored = [n for n in left if n.startswith("episode_001_restored_")]
    assert left == [writing._tmp.name, "episode_000", *restored, "episode_003"] and len(restored) == 1
    assert "deleted on the Pi after verification here: 2 episodes" in text  # episode_002 and episode_005
    assert "kept on the Pi episode_000: the copy here (episode_000) no longer matches" in text
    assert "kept on the Pi episode_001: its content on the Pi changed since it was verified here" in text
    assert len(list((pi / restored[0] / "frames").iterdir())) == 10  # the new recording, intact

    monkeypatch.setattr(pull_remote, "delete_verified", real_delete)
    again, _, _ = do_pull(loopback_pi, pi, out, delete_after_verify=True)
    assert [p.remote for p in again.new] == restored and again.deleted == restored  # pulled, then freed
    assert sorted(p.name for p in pi.iterdir()) == [writing._tmp.name, "episode_000", "episode_003"]


def test_a_missing_folder_on_the_pi_names_the_fix(loopback_pi, tmp_path, capsys):
    code = main(["data", "pull", loopback_pi.alias, str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"),
                 "--ssh-config", str(loopback_pi.config)])
    err = capsys.readouterr().err
    assert code == 2 and f"there is no folder {tmp_path / 'nowhere'}" in err and "edgeact drive … --record" in err
