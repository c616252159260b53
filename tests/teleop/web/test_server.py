"""The drive page's server over real HTTP and websockets (aiohttp's client): the token, the
socket's messages (good, malformed, oversized), state shared by every page."""

from __future__ import annotations

import asyncio
import json
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
    assert status == 200 and "edgeact drive" in body and "edgeact_token" in cookies
    status, body, _ = asyncio.run(_get(base(session) + "/static/drive.js", cookies={"edgeact_token": session.token}))
    assert status == 200 and "WebSocket" in body


async def _exchange(session, sends: list, wait_s: float = 0.6) -> tuple[list[dict], list[bytes], int | None]:
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
    assert code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
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
