"""`edgeact drive` as a user starts it: the URL with its token, 401 without it, a clean exit."""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import signal
import ssl
import subprocess
import sys
import time
import types
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


def test_over_https_the_fingerprint_is_printed_and_in_the_qr_codes_url(monkeypatch):
    cert = types.SimpleNamespace(sha256="AB:CD", made="", cert_path="/home/pi/.config/edgeact/tls/drive-cert.pem",
                                 not_after=dt.datetime(2027, 1, 1))
    encoded = []
    segno = pytest.importorskip("segno")
    real = segno.make
    monkeypatch.setattr(segno, "make", lambda text, **kw: encoded.append(text) or real(text, **kw))
    out = io.StringIO()
    announce("https://192.168.1.20:8887/?token=abc", stream=out, certificate=cert)
    text = out.getvalue()
    assert "certificate SHA-256 AB:CD" in text and "drive-cert.pem, reused" in text
    assert encoded == ["https://192.168.1.20:8887/?token=abc#sha256=AB:CD"]  # a fragment: never sent to the rover


def test_a_bad_flag_is_a_clear_error(capsys):
    assert main(["drive", "--camera", "sim", "--actuator", "sim", "--web", "nowhere"]) == 2
    assert "--web 'nowhere': use HOST:PORT" in capsys.readouterr().err


def start_drive(*args: str) -> tuple[subprocess.Popen, str, list[str]]:
    """`edgeact drive --camera sim --actuator sim ARGS` in a subprocess: (process, the URL it printed, its lines)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "edgeact.cli", "drive", "--camera", "sim", "--actuator", "sim",
                             "--no-qr", "--no-realtime", "--size", "90x160", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    url = None
    deadline = time.monotonic() + 60
    lines: list[str] = []
    while url is None and time.monotonic() < deadline and proc.poll() is None:
        line = proc.stdout.readline()
        lines.append(line)
        m = re.search(r"open (https?://\S+)", line)
        url = m.group(1) if m else None
    if url is None:
        proc.kill()
        pytest.fail("".join(lines))
    lines.append(proc.stdout.readline())  # the certificate line, if any
    return proc, url, lines


def stop_drive(proc: subprocess.Popen) -> str:
    try:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return out


@pytest.mark.slow
def test_drive_cli_serves_the_page_behind_its_token_and_exits_neutral(tmp_path):
    proc, url, _ = start_drive("--web", "127.0.0.1:0", "--record", str(tmp_path / "eps"))
    try:
        assert url.startswith("http://")  # this machine only: plain HTTP
        with urllib.request.urlopen(url, timeout=10) as r:
            assert r.status == 200 and b"edgeact drive" in r.read()
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url.split("?")[0], timeout=10)
        assert err.value.code == 401
    finally:
        out = stop_drive(proc)
    assert proc.returncode == 0, out
    assert "neutral at exit: yes" in out and "stopped: SIGINT" in out and "no episodes recorded" in out


@pytest.mark.slow
def test_drive_cli_https_prints_the_fingerprint_of_the_certificate_it_serves(tmp_path):
    proc, url, lines = start_drive("--web", "127.0.0.1:0", "--https", "--cert-dir", str(tmp_path / "tls"))
    try:
        assert url.startswith("https://127.0.0.1:")
        printed = re.search(r"certificate SHA-256 ([0-9A-F:]{95})", "".join(lines)).group(1)
        host, port = url.split("/")[2].split(":")
        served = ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate((host, int(port))))
        from edgeact.teleop.web.certificate import fingerprint

        assert fingerprint(served) == printed
        trusting = ssl.create_default_context(cafile=str(tmp_path / "tls" / "drive-cert.pem"))
        with urllib.request.urlopen(url, timeout=10, context=trusting) as r:
            cookie = r.headers["Set-Cookie"]
            assert r.status == 200 and "edgeact_token" in cookie and "Secure" in cookie
    finally:
        out = stop_drive(proc)
    assert proc.returncode == 0, out
