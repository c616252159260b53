"""The drive page's server over real HTTP(S) and websockets (aiohttp's client): the token and its
cookie, HTTPS with the rover's certificate, the socket's messages (good, malformed, oversized),
state shared by every page."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import struct

import aiohttp
import pytest
from teleop_fakes import CountingCamera, quiet_runtime

from edgeact.runtime import open_actuator
from edgeact.teleop.no_policy import NoPolicy
from edgeact.teleop.session import DriveConfig, DriveSession


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    cfg = DriveConfig(runtime=quiet_runtime(slew=False), port=0, record_dir=str(tmp_path_factory.mktemp("eps")),
                      video_fps=30.0)
    s = DriveSession(NoPolicy((24, 32)), CountingCamera(fps=30.0), open_actuator("none"), cfg, has_policy=False)
    s.start()
    yield s
    s.stop()


def base(session) -> str:
    return session.url.split("/?")[0]


async def _get(url: str, **kw) -> tuple[int, str, dict]:
    async with aiohttp.ClientSession() as http, http.get(url, **kw) as r:
        return r.status, await r.text(), dict(r.cookies)


def test_without_the_token_everything_is_401(session):
    for path in ("/", "/static/drive.js", "/ws", "/?token=wrong"):
        status, body, _ = asyncio.run(_get(base(session) + path))
        assert status == 401, path
        assert "token" in body
    status, body, cookies = asyncio.run(_get(session.url))
    assert status == 200 and "location.replace" in body  # the first load moves on to the clean URL
    morsel = cookies[session.server.cookie]
    assert morsel.value == session.token and morsel["httponly"] and morsel["samesite"] == "Strict"
    assert not morsel["secure"]  # plain HTTP on this machine: a Secure cookie would never come back
    jar = {session.server.cookie: session.token}
    status, body, _ = asyncio.run(_get(base(session) + "/", cookies=jar))
    assert status == 200 and "drive.js" in body  # the page itself, behind the cookie alone
    status, body, _ = asyncio.run(_get(base(session) + "/static/drive.js", cookies=jar))
    assert status == 200 and "WebSocket" in body
    status, _, _ = asyncio.run(_get(base(session) + "/", cookies={"edgeact_token_1": session.token}))
    assert status == 401  # another drive's cookie name (another port) is not this one's


@pytest.fixture(scope="module")
def tls_session(tmp_path_factory):
    cfg = DriveConfig(runtime=quiet_runtime(slew=False), port=0, https=True,
                      cert_dir=str(tmp_path_factory.mktemp("tls")), video_fps=30.0)
    s = DriveSession(NoPolicy((24, 32)), CountingCamera(fps=30.0), open_actuator("none"), cfg, has_policy=False)
    s.start()
    yield s
    s.stop()


def trusting(session) -> ssl.SSLContext:
    """A client that trusts the rover's certificate and nothing else (and checks the name)."""
    return ssl.create_default_context(cafile=str(session.certificate.cert_path))


async def _tls_exchange(session, url: str, cookies: dict | None = None) -> tuple[int, str, dict, list[str]]:
    async with aiohttp.ClientSession(cookies=cookies) as http:
        async with http.get(url, ssl=trusting(session), allow_redirects=False) as r:
            status, body, headers, got = r.status, await r.text(), r.headers, dict(r.cookies)
        texts = []
        if status == 200 and cookies:
            async with http.ws_connect(base(session) + "/ws", ssl=trusting(session)) as ws:
                for _ in range(3):
                    msg = await ws.receive(timeout=5.0)
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        texts.append(json.loads(msg.data)["type"])
        return status, body, {**got, "_referrer_policy": headers.get("Referrer-Policy")}, texts


def test_https_serves_the_page_and_socket_behind_the_cookie(tls_session):
    s = tls_session
    assert s.url.startswith("https://127.0.0.1:") and s.certificate is not None
    status, _, got, _ = asyncio.run(_tls_exchange(s, s.url))
    morsel = got[s.server.cookie]
    assert status == 200 and morsel["secure"] and morsel["httponly"] and morsel["samesite"] == "Strict"
    assert got["_referrer_policy"] == "no-referrer"
    status, body, _, texts = asyncio.run(_tls_exchange(s, base(s) + "/", cookies={s.server.cookie: s.token}))
    assert status == 200 and "drive.js" in body and texts[0] == "hello" and "status" in texts
    for path in ("/", "/static/drive.css", "/ws"):
        status, _, _, _ = asyncio.run(_tls_exchange(s, base(s) + path))
        assert status == 401, path


def test_https_only_and_the_certificate_is_checkable(tls_session):
    s = tls_session

    async def plain_http() -> None:
        async with aiohttp.ClientSession() as http, http.get(base(s).replace("https", "http")) as r:
            await r.text()

    with pytest.raises(aiohttp.ClientError):  # no clear-text fallback on the HTTPS port
        asyncio.run(plain_http())

    async def untrusted() -> None:
        async with aiohttp.ClientSession() as http, http.get(s.url) as r:
            await r.text()

    with pytest.raises(aiohttp.ClientConnectorCertificateError):  # a client that does not trust it refuses it
        asyncio.run(untrusted())
    served = ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate(("127.0.0.1", s.server.port)))
    from edgeact.teleop.web.certificate import fingerprint

    assert fingerprint(served) == s.certificate.sha256  # the fingerprint printed is the certificate served


async def _exchange(session, sends: list, wait_s: float = 0.6, ack_after: float | None = 0.0
                    ) -> tuple[list[dict], list[bytes], int | None]:
    """A page on the socket for ``wait_s``: what it got. It says it received each frame ``ack_after``
    seconds after it did, as the page's script does (None: never, as an old script)."""
    texts, frames = [], []
    url = f"{base(session)}/ws?token={session.token}"
    async with aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=0) as ws:
        for item in sends:
            if isinstance(item, bytes):
                await ws.send_bytes(item)
            else:
                await ws.send_str(item if isinstance(item, str) else json.dumps(item))
        end = asyncio.get_running_loop().time() + wait_s
        while (left := end - asyncio.get_running_loop().time()) > 0:
            try:
                msg = await ws.receive(timeout=left)
            except asyncio.TimeoutError:
                break
            if msg.type == aiohttp.WSMsgType.TEXT:
                texts.append(json.loads(msg.data))
            elif msg.type == aiohttp.WSMsgType.BINARY:
                frames.append(msg.data)
                if ack_after is not None:
                    await asyncio.sleep(ack_after)
                    # the server may be closing the socket meanwhile: the page's ack then goes nowhere, and
                    # the next receive reports the close
                    with contextlib.suppress(aiohttp.ClientConnectionResetError):
                        await ws.send_json({"type": "frame"})
            else:
                break
        return texts, frames, ws.close_code


def test_the_socket_sends_state_and_newest_frames(session):
    texts, frames, _ = asyncio.run(_exchange(session, [], wait_s=1.0))
    assert texts[0]["type"] == "hello" and texts[0]["source"].startswith("page ")
    status = [t for t in texts if t["type"] == "status"]
    assert len(status) >= 3 and status[-1]["mode"] == "user" and status[-1]["modes"] == ["user"]
    assert status[-1]["controller"] is None and status[-1]["neutral"] is True
    assert len(frames) >= 5
    wall_ms, index = struct.unpack("<dI", frames[-1][:12])
    assert frames[-1][12:14] == b"\xff\xd8" and wall_ms > 1e12  # a JPEG stamped with its capture time
    assert len({struct.unpack("<dI", f[:12])[1] for f in frames}) == len(frames)  # each frame once


def test_one_frame_in_flight_a_slow_page_skips_frames_instead_of_queueing_them(session):
    hold = 0.3  # the page takes this long with each frame (a starved phone)
    _, frames, _ = asyncio.run(_exchange(session, [], wait_s=1.2, ack_after=hold))
    indices = [struct.unpack("<dI", f[:12])[1] for f in frames]
    assert 2 <= len(frames) <= 1 + 1.2 / hold + 1  # the encoder made ~36 meanwhile: the rest were skipped
    assert all(b - a > 1 for a, b in zip(indices, indices[1:]))  # each one sent was the newest, not the next
    _, frames, _ = asyncio.run(_exchange(session, [], wait_s=3.0, ack_after=None))
    assert len(frames) >= 4  # a page that never answers (an old script) still gets its video


def test_bad_messages_are_answered_and_ignored_never_fatal(session):
    sends = ["{not json", json.dumps({"type": "control", "steering": 9, "throttle": 0}),
             json.dumps({"type": "mode", "mode": "auto"}),  # no policy loaded
             json.dumps({"type": "mode", "mode": "warp"}),
             json.dumps({"type": "x", "pad": "y" * 10_000}),  # oversized for our parser
             b"\x00\x01binary",
             json.dumps({"type": "control", "steering": 0.5, "throttle": 0.5, "active": True})]
    texts, _, _ = asyncio.run(_exchange(session, sends))
    errors = [t["message"] for t in texts if t["type"] == "error"]
    assert any("not JSON" in e for e in errors)
    assert any("'steering' must be in" in e for e in errors)
    assert any("needs a policy" in e for e in errors)
    assert any("unknown mode 'warp'" in e for e in errors)
    assert any("limit" in e for e in errors)
    status = [t for t in texts if t["type"] == "status"]
    assert any(t["you"] for t in status) and status[-1]["mode"] == "user"  # still serving; the good message acted
    assert status[-1]["controller"] is None and "silent" in status[-1]["held"]  # then it fell silent: neutral


def test_a_message_beyond_the_socket_limit_closes_only_that_socket(session):
    _, _, code = asyncio.run(_exchange(session, ["x" * (65 * 1024)]))
    # The server closes with 1009 and drops the connection; when the rest of the message is still
    # unread in its socket, the kernel resets the connection and the client sees only the drop (1006).
    assert code in (aiohttp.WSCloseCode.MESSAGE_TOO_BIG, aiohttp.WSCloseCode.ABNORMAL_CLOSURE)
    texts, _, _ = asyncio.run(_exchange(session, [], wait_s=0.3))
    assert any(t["type"] == "status" for t in texts)  # the server carries on


def test_state_lives_on_the_rover_a_second_page_sees_it(session):
    async def two_pages():
        async with aiohttp.ClientSession() as http:
            url = f"{base(session)}/ws?token={session.token}"
            async with http.ws_connect(url) as a, http.ws_connect(url) as b:
                await a.send_json({"type": "max_throttle", "value": 0.35})
                await a.send_json({"type": "record"})
                await asyncio.sleep(0.5)
                seen = None
                while seen is None:
                    raw = await b.receive()
                    msg = json.loads(raw.data) if raw.type == aiohttp.WSMsgType.TEXT else {}
                    if msg.get("type") == "status" and msg["recording"]:
                        seen = msg
                await a.send_json({"type": "record"})
                await asyncio.sleep(0.3)
                return seen

    seen = asyncio.run(asyncio.wait_for(two_pages(), 10.0))
    assert seen["max_throttle"] == 0.35 and seen["recording"] is True
    assert seen["you"] is False and seen["controller"].startswith("page ")
