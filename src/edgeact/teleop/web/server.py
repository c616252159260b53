"""The drive page's server: aiohttp in its own thread and event loop, beside the runtime.

Routes (every one needs the token, as ``?token=`` or the cookie the page sets):

    GET /?token=…    sets the cookie and moves on to ``/`` (``location.replace``): the token
                     leaves the address bar and the tab's history after the first load
    GET /            the page
    GET /static/…    its script and style
    GET /ws          the socket: JSON control messages in (messages.py); out, the rover's
                     state as JSON every 100 ms and the video as binary messages

The cookie is HttpOnly (no script reads it), SameSite=Strict (no other site's page sends it)
and, over HTTPS, Secure; its name holds the port, so two drives on one machine do not
overwrite each other's. With a :class:`~edgeact.teleop.web.certificate.Certificate` the
server speaks HTTPS only.

A video message is a 12-byte header (capture time as float64 ms since the epoch, frame
index as uint32, little-endian) and a JPEG. One encoder serves every page at
``video_fps`` at most, only while a page is open; each page's sender always takes the
newest frame once the page said it received the previous one (``{"type": "frame"}``): one
frame in flight per page, so a slow phone skips frames and never queues them, in the
kernel's socket buffers or the browser's either (a long drive on a starved page built up
seconds of stale video before; a page that never answers, an old script, is sent frames
as they come).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import secrets
import struct
import threading
import time
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
from aiohttp import WSMsgType, web

from edgeact.teleop.messages import FrameReceived, MessageError, parse_message
from edgeact.teleop.web.certificate import Certificate, outgoing_address

log = logging.getLogger("edgeact.drive")

STATIC = Path(__file__).parent / "static"
COOKIE = "edgeact_token"
STATUS_PERIOD_S = 0.1
MAX_SOCKET_MESSAGE = 64 * 1024  # aiohttp closes the socket above this; parse_message rejects > 4 KiB
HEADER = struct.Struct("<dI")
FIRST_ACK_S = 2.0  # a page that has not answered a frame within this is sent frames without waiting
# On every answer: the first URL holds the token, so no request from the page names it as its referrer.
HEADERS = {"Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"}
# The answer to the first load. Not an HTTP redirect: when the URL was opened from another site's
# page, Chromium withholds SameSite=Strict cookies from every request of that redirect chain (the
# redirected load would be refused); a navigation the page itself starts is same-site.
FIRST_LOAD = ('<!doctype html><meta charset="utf-8"><title>edgeact drive</title>'
              '<script>location.replace("/" + location.hash)</script>'
              "<noscript>edgeact drive: the page needs JavaScript.</noscript>\n")


class Controls(Protocol):
    camera: Any

    def apply(self, source: str, msg: Any) -> str | None: ...
    def status(self) -> dict[str, Any]: ...
    def lost(self, source: str, reason: str) -> None: ...


class DriveServer:
    def __init__(self, controls: Controls, host: str, port: int, token: str, video_fps: float,
                 video_quality: int, video_width: int = 640, certificate: Certificate | None = None) -> None:
        self.controls = controls
        self.host = host
        self.port = port
        self.token = token
        self.certificate = certificate  # None: plain HTTP
        self.video_period = 1.0 / video_fps
        self.video_quality = video_quality
        self.video_width = video_width
        self.frames_encoded = 0
        self.encode_s = 0.0  # CPU spent encoding video (for the benchmark)
        self._ids = itertools.count(1)
        self._pages: set[web.WebSocketResponse] = set()
        self._video: bytes | None = None
        self._video_version = 0
        self._video_cond: asyncio.Condition | None = None
        self._encoder: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._native_id = 0
        self._status_cache: dict[str, Any] = {}
        self._status_t = -1.0

    # ---- lifecycle (caller's thread) ---------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name="drive-web", daemon=True)
        self._thread.start()
        self._ready.wait(10.0)
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        loop = self._loop
        if loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=5.0)
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    @property
    def url(self) -> str:
        scheme = "https" if self.certificate is not None else "http"
        return f"{scheme}://{_display_host(self.host)}:{self.port}/?token={self.token}"

    @property
    def cookie(self) -> str:
        return f"{COOKIE}_{self.port}"

    # ---- the server thread ---------------------------------------------------------------------

    def cpu_seconds(self) -> float | None:
        """CPU time spent serving the page so far: the server thread plus video encoding (Linux)."""
        try:
            fields = Path(f"/proc/self/task/{self._native_id}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") + self.encode_s

    def _serve(self) -> None:
        self._native_id = threading.get_native_id()
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._start_site())
        except BaseException as err:  # noqa: BLE001 - reported to start()
            from edgeact.errors import ConfigError

            self._error = ConfigError(f"cannot serve the drive page on {self.host}:{self.port}: {err} "
                                      "(pick another port with --web HOST:PORT)")
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _start_site(self) -> None:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/", self._page)
        app.router.add_get("/ws", self._socket)
        app.router.add_static("/static/", STATIC)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        tls = self.certificate.ssl_context() if self.certificate is not None else None
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=tls)
        await site.start()
        if self.port == 0:  # the port the OS chose
            self.port = self._runner.addresses[0][1]
        self._video_cond = asyncio.Condition()
        self._encoder = asyncio.get_running_loop().create_task(self._encode_loop())

    async def _shutdown(self) -> None:
        if self._encoder is not None:
            self._encoder.cancel()
        for ws in list(self._pages):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # ---- HTTP ------------------------------------------------------------------------------------

    @web.middleware
    async def _auth(self, request: web.Request, handler):
        in_query = request.query.get("token")
        given = in_query or request.cookies.get(self.cookie) or ""
        if not secrets.compare_digest(given.encode(), self.token.encode()):
            log.warning("refused %s %s from %s: no valid token", request.method, request.path, request.remote)
            raise web.HTTPUnauthorized(headers=HEADERS, text="edgeact drive: this page needs its token; open the "
                                       "full URL printed in the terminal (or scan its QR code)\n")
        if in_query and request.path == "/":  # a person's first load: the token moves into the cookie
            resp: web.StreamResponse = web.Response(text=FIRST_LOAD, content_type="text/html",
                                                    headers={"Cache-Control": "no-store", **HEADERS})
            resp.set_cookie(self.cookie, self.token, path="/", httponly=True, samesite="Strict",
                            secure=self.certificate is not None)
            return resp
        resp = await handler(request)
        if not resp.prepared:  # a socket has answered its handshake already
            resp.headers.update(HEADERS)
        return resp

    async def _page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    # ---- the socket --------------------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=MAX_SOCKET_MESSAGE)
        await ws.prepare(request)
        source = f"page {next(self._ids)}"
        log.info("%s opened from %s", source, request.remote)
        self._pages.add(ws)
        await ws.send_json({"type": "hello", "source": source})
        received = asyncio.Event()
        tasks = [asyncio.create_task(self._send_status(ws, source)),
                 asyncio.create_task(self._send_video(ws, received))]
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_text(ws, source, msg.data, received)
                elif msg.type == WSMsgType.BINARY:
                    log.warning("%s: binary message of %d bytes ignored", source, len(msg.data))
        finally:
            for t in tasks:
                t.cancel()
            self._pages.discard(ws)
            self.controls.lost(source, f"{source} closed")
            log.info("%s closed (%s)", source, ws.close_code)
        return ws

    async def _on_text(self, ws: web.WebSocketResponse, source: str, data: str, received: asyncio.Event) -> None:
        try:
            msg = parse_message(data)
        except MessageError as err:
            log.warning("%s: ignored a bad message: %s", source, err)
            await ws.send_json({"type": "error", "message": f"ignored: {err}"})
            return
        if isinstance(msg, FrameReceived):
            received.set()
            return
        error = self.controls.apply(source, msg)
        if error:
            await ws.send_json({"type": "error", "message": error})

    async def _send_status(self, ws: web.WebSocketResponse, source: str) -> None:
        while not ws.closed:
            status = dict(self._status())
            status["you"] = status.get("controller") == source
            await ws.send_json(status)
            await asyncio.sleep(STATUS_PERIOD_S)

    def _status(self) -> dict[str, Any]:
        """The rover's state, computed once per period however many pages are open."""
        now = time.monotonic()
        if now - self._status_t >= STATUS_PERIOD_S / 2:
            self._status_cache = {**self.controls.status(), "type": "status"}
            self._status_t = now
        return self._status_cache

    async def _send_video(self, ws: web.WebSocketResponse, received: asyncio.Event) -> None:
        assert self._video_cond is not None
        sent = 0
        answers: bool | None = None  # does this page acknowledge frames? (an old cached script does not)
        while not ws.closed:
            async with self._video_cond:
                await self._video_cond.wait_for(functools.partial(self._newer_than, sent))
                data, sent = self._video, self._video_version
            if data is None:
                continue
            received.clear()
            await ws.send_bytes(data)
            if answers:
                await received.wait()  # one frame in flight: the next one sent is the newest
            elif answers is None:
                try:
                    await asyncio.wait_for(received.wait(), FIRST_ACK_S)
                    answers = True
                except asyncio.TimeoutError:
                    answers = False

    def _newer_than(self, version: int) -> bool:
        return self._video_version > version

    async def _encode_loop(self) -> None:
        assert self._video_cond is not None
        loop = asyncio.get_running_loop()
        last_index = -1
        next_t = time.monotonic()
        while True:
            next_t = max(next_t + self.video_period, time.monotonic())
            await asyncio.sleep(max(0.0, next_t - time.monotonic()))
            frame = self.controls.camera.latest() if self._pages else None
            if frame is None or frame.index == last_index:
                continue
            last_index = frame.index
            data = await loop.run_in_executor(None, self._encode, frame)  # cv2 releases the GIL
            if data is None:
                continue
            async with self._video_cond:
                self._video = data
                self._video_version += 1
                self._video_cond.notify_all()

    def _encode(self, frame: Any) -> bytes | None:
        t0 = time.thread_time()
        image = frame.image
        h, w = image.shape[:2]
        if w > self.video_width:
            image = cv2.resize(image, (self.video_width, round(h * self.video_width / w)), interpolation=cv2.INTER_AREA)
        bgr = np.ascontiguousarray(image[..., ::-1])
        ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, self.video_quality])
        self.encode_s += time.thread_time() - t0
        if not ok:
            return None
        self.frames_encoded += 1
        wall_ms = (time.time() - (time.monotonic() - frame.t_capture)) * 1e3
        return HEADER.pack(wall_ms, frame.index & 0xFFFFFFFF) + jpeg.tobytes()


def _display_host(host: str) -> str:
    """The address to print for ``host``: this machine's LAN address when bound to all of them."""
    if host in ("0.0.0.0", "::", ""):
        import socket

        return outgoing_address() or socket.gethostname()
    return f"[{host}]" if ":" in host else host
