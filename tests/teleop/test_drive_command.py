"""`edgeact drive` as a user starts it: the URL with its token, 401 without it, a clean exit."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from edgeact.cli import main
from edgeact.commands.drive import announce, parse_web


def test_web_flag_and_bad_values():
    assert parse_web("0.0.0.0:8887") == ("0.0.0.0", 8887)
    assert parse_web(":9000") == ("127.0.0.1", 9000)
    assert parse_web("[::1]:80") == ("::1", 80)
    for bad in ("8887", "host:port", "host:70000"):
        with pytest.raises(Exception, match="HOST:PORT"):
            parse_web(bad)


def test_announce_prints_the_url_and_a_qr_code():
    out = io.StringIO()
    announce("http://192.168.1.20:8887/?token=abc", stream=out)
    text = out.getvalue()
    assert "http://192.168.1.20:8887/?token=abc" in text
    assert text.count("\n") > 15 and "█" in text  # the code, in block characters


def test_a_bad_flag_is_a_clear_error(capsys):
    assert main(["drive", "--camera", "sim", "--actuator", "sim", "--web", "nowhere"]) == 2
    assert "--web 'nowhere': use HOST:PORT" in capsys.readouterr().err


@pytest.mark.slow
def test_drive_cli_serves_the_page_behind_its_token_and_exits_neutral(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "edgeact.cli", "drive", "--camera", "sim", "--actuator", "sim",
                             "--web", "127.0.0.1:0", "--record", str(tmp_path / "eps"), "--no-qr", "--no-realtime",
                             "--size", "90x160"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        url = None
        deadline = time.monotonic() + 60
        lines = []
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            m = re.search(r"open (http://\S+)", line)
            url = m.group(1) if m else None
        assert url, "".join(lines)
        with urllib.request.urlopen(url, timeout=10) as r:
            assert r.status == 200 and b"edgeact drive" in r.read()
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url.split("?")[0], timeout=10)
        assert err.value.code == 401
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "neutral at exit: yes" in out and "stopped: SIGINT" in out and "no episodes recorded" in out
