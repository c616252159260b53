"""The ssh transport against a real sshd on loopback: flags, keys, errors."""

from __future__ import annotations

import time

import pytest

from edgeact.errors import RemoteError
from edgeact.ssh import SshSession, SshTarget, explain_ssh_failure, remote_path_arg


def test_wrong_key_fails_at_once_with_the_fix(loopback_pi):
    before = loopback_pi.connections()
    target = SshTarget(f"{loopback_pi.user}@127.0.0.1", port=loopback_pi.port, identity=loopback_pi.wrong_key,
                       config=loopback_pi.plain_config)
    with pytest.raises(RemoteError, match=r"refused the key.*ssh-copy-id"):
        SshSession(target).open()
    time.sleep(0.2)
    assert loopback_pi.connections() - before == 1  # one attempt, no retry loop


def test_port_and_identity_flags_and_bytes_counted(loopback_pi):
    target = SshTarget(f"{loopback_pi.user}@127.0.0.1", port=loopback_pi.port, identity=loopback_pi.key,
                       config=loopback_pi.plain_config)
    with SshSession(target) as s:
        assert s.run('printf "%s|%s" "$1" "$2"', "a b", "it's").stdout == "a b|it's"
        assert s.run("exit 7", check=False).returncode == 7
        with pytest.raises(RemoteError, match="no such thing"):
            s.run('echo "no such thing" >&2; exit 1')
    assert 0 < s.bytes_sent < 20_000


def test_an_unknown_host_key_is_not_accepted_silently(loopback_pi, tmp_path):
    config = tmp_path / "config"
    config.write_text(f"Host *\n  UserKnownHostsFile {tmp_path / 'empty'}\n  GlobalKnownHostsFile /dev/null\n"
                      "  StrictHostKeyChecking yes\n")
    target = SshTarget(f"{loopback_pi.user}@127.0.0.1", port=loopback_pi.port, identity=loopback_pi.key,
                       config=config)
    with pytest.raises(RemoteError, match="host key is unknown or has changed"):
        SshSession(target).open()


def test_remote_paths_resolve_like_ssh_and_rsync():
    assert remote_path_arg("~/edgeact") == "edgeact"  # relative to the login's home, for sh, rsync and scp
    assert remote_path_arg("~") == "."
    assert remote_path_arg("/srv/rover") == "/srv/rover"


@pytest.mark.parametrize("log, fix", [
    ("ssh: Could not resolve hostname rover: Name or service not known", "raspberrypi.local"),
    ("ssh: connect to host 10.0.0.9 port 22: Connection refused", "SSH enabled"),
])
def test_failures_name_the_fix(log, fix):
    assert fix in explain_ssh_failure("pi@rover", log)


def test_scp_is_used_when_rsync_is_missing(loopback_pi, tmp_path, monkeypatch):
    import shutil

    from edgeact import ssh

    real_which = shutil.which
    monkeypatch.setattr(ssh.shutil, "which", lambda name: None if name == "rsync" else real_which(name))
    (tmp_path / "src" / "hailo" / "split").mkdir(parents=True)
    names = ("a.bin", "b.json", "hailo/split/model.hef")  # a Hailo part lives in sub-folders
    for name, data in zip(names, (b"\x00" * 5000, b"{}", b"hef")):
        (tmp_path / "src" / name).write_bytes(data)
    dest = tmp_path / "pi" / "dest"
    with SshSession(SshTarget(loopback_pi.alias, config=loopback_pi.config)) as s:
        s.send(tmp_path / "src", list(names), str(dest), use_rsync=True)
    assert sorted(p.name for p in dest.iterdir()) == ["a.bin", "b.json", "hailo"]
    assert (dest / "a.bin").read_bytes() == b"\x00" * 5000 and (dest / "hailo/split/model.hef").read_bytes() == b"hef"


@pytest.mark.parametrize("rsync", [True, False], ids=["rsync", "scp"])
def test_receive_copies_paths_with_their_folders_and_says_as_each_file_arrives(loopback_pi, tmp_path, monkeypatch,
                                                                                rsync):
    import shutil

    from edgeact import ssh

    real_which = shutil.which
    if not rsync:
        monkeypatch.setattr(ssh.shutil, "which", lambda name: None if name == "rsync" else real_which(name))
    pi = tmp_path / "pi"
    files = {"episode_000/data.csv": b"frame\n0\n", "episode_000/frames/000000.jpg": b"\xff" * 3000,
             "episode_001/frames/000000.jpg": b"\x00" * 10}
    for name, data in files.items():
        (pi / name).parent.mkdir(parents=True, exist_ok=True)
        (pi / name).write_bytes(data)
    (pi / "episode_000" / "not_asked_for.txt").write_text("stays on the Pi")
    here, arrived = tmp_path / "here", []
    with SshSession(SshTarget(loopback_pi.alias, config=loopback_pi.config)) as s:
        s.receive(str(pi), sorted(files), here, use_rsync=True, on_file=arrived.append)
    assert sorted(arrived) == sorted(files)
    assert {str(p.relative_to(here)): p.read_bytes() for p in here.rglob("*") if p.is_file()} == files
