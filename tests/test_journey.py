"""The whole loop as a user walks it, command after command, on the simulated rover.

The "Pi" is a folder behind the real loopback sshd (tests/loopback_sshd.py): edgeact is
installed there by `edgeact deploy --setup` (a venv, the runtime only, no torch), and
`edgeact drive --camera sim --actuator sim` runs there through ssh as a person starts it in
a terminal on the rover. The phone is a websocket client speaking the drive page's
messages (teleop/messages.py) to the page's server on the "Pi". Everything else is the
`edgeact` command line on this machine. README.md ("From unboxing to autonomous laps")
lists the same commands for a real rover.

Sizes are tiny (96x128 frames at 10 fps, a few seconds per episode, a few dozen training
steps): the test proves the commands chain, not that the policy drives well. It prints
each stage's wall time and the bytes each pull moved.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from edgeact.cli import main
from edgeact.data.episodes import load_episodes
from edgeact.deploy.bundles import verify_local

pytestmark = pytest.mark.slow

FPS = 10  # the episodes' rate: small episodes, and the trained policy's fps


class OnThePi:
    """A command running on the "Pi" through ssh, as started in a terminal there; Ctrl-C ends it."""

    def __init__(self, pi, root: Path, command: str) -> None:
        self.pi = pi
        self.pidfile = root / "journey-command.pid"
        remote = f"echo $$ > {self.pidfile}; exec {command}"
        self.proc = subprocess.Popen(["ssh", "-F", str(pi.config), pi.alias, remote], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, pattern: str, timeout: float = 120.0) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if m := re.search(pattern, line):
                    return m
            assert self.proc.poll() is None, "".join(self.lines)
            time.sleep(0.1)
        raise AssertionError(f"no {pattern!r} within {timeout} s:\n{''.join(self.lines)}")

    def ctrl_c(self) -> str:
        subprocess.run(["ssh", "-F", str(self.pi.config), self.pi.alias, f"kill -INT $(cat {self.pidfile})"],
                       check=True)
        self.proc.wait(timeout=60)
        self._reader.join(timeout=10)
        output = "".join(self.lines)
        assert self.proc.returncode == 0, output
        return output


class Page:
    """The drive page on a phone: its socket, and a person's hands on it."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.status: dict = {}

    async def read(self) -> None:
        async for msg in self.ws:  # the rover's state every 100 ms, and video frames (ignored)
            if msg.type == aiohttp.WSMsgType.TEXT and (data := json.loads(msg.data)).get("type") == "status":
                self.status = data

    async def send(self, **message) -> None:
        await self.ws.send_json(message)

    async def hold(self, seconds: float, steering: Callable[[float], float], throttle: float,
                   active: bool = True) -> None:
        """The joystick held (or released: ``active`` False) for ``seconds``: a control message every 100 ms."""
        t0 = time.monotonic()
        while (t := time.monotonic() - t0) < seconds:
            await self.send(type="control", steering=steering(t), throttle=throttle, active=active)
            await asyncio.sleep(0.1)

    async def until(self, predicate: Callable[[dict], bool], timeout: float = 30.0) -> None:
        t0 = time.monotonic()
        while not predicate(self.status):
            assert time.monotonic() - t0 < timeout, f"the page never showed it; last status {self.status}"
            await self.send(type="control", steering=0.0, throttle=0.0, active=False)  # the heartbeat
            await asyncio.sleep(0.1)


def on_the_phone(url: str, act: Callable[[Page], Awaitable[None]]) -> None:
    """Open the page's socket (the token from the printed URL) and let ``act`` use it."""
    parts = urllib.parse.urlsplit(url)
    ws_url = f"{'wss' if parts.scheme == 'https' else 'ws'}://{parts.netloc}/ws?{parts.query}"

    async def session() -> None:
        async with aiohttp.ClientSession() as http, http.ws_connect(ws_url, ssl=False) as ws:
            page = Page(ws)
            reader = asyncio.create_task(page.read())
            try:
                await page.until(lambda s: bool(s))
                await act(page)
            finally:
                reader.cancel()

    asyncio.run(session())


async def record_by_hand(page: Page, episodes: int, seconds: float) -> None:
    """User mode: record ``episodes`` drives along a gentle weave, stopping between them."""
    for _ in range(episodes):
        before = page.status["episodes"]
        await page.send(type="record")
        await page.until(lambda s: s["recording"])
        await page.hold(seconds, lambda t: 0.4 * math.sin(1.5 * t), 0.8)
        await page.hold(0.3, lambda t: 0.0, 0.0, active=False)
        await page.send(type="record")
        await page.until(lambda s, n=before: s["episodes"] == n + 1)


async def record_takeovers(page: Page, episodes: int, seconds: float) -> None:
    """Auto mode: the policy drives; the person takes over in the middle of each episode, then lets go."""
    await page.send(type="mode", mode="auto")
    await page.until(lambda s: s["mode"] == "auto" and s["chunk"] is not None)  # the policy is planning
    for _ in range(episodes):
        before = page.status["episodes"]
        await page.send(type="record")
        await page.until(lambda s: s["recording"])
        await page.hold(seconds / 3, lambda t: 0.0, 0.0, active=False)  # hands off: the policy drives
        await page.hold(seconds / 3, lambda t: -0.6, 0.6)  # a takeover
        await page.hold(seconds / 3, lambda t: 0.0, 0.0, active=False)  # handed back
        await page.send(type="record")
        await page.until(lambda s, n=before: s["episodes"] == n + 1)


async def stop_recording(page: Page) -> None:
    before = page.status["episodes"]
    await page.send(type="record")
    await page.until(lambda s: s["episodes"] == before + 1)


def edgeact(*args: str) -> str:
    """`edgeact ARGS` as typed in a terminal here; its output."""
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(list(args))
    text = buffer.getvalue()
    print(text, end="")
    assert code == 0, f"edgeact {' '.join(args)} exited {code}"
    return text


def received_bytes(pull_output: str) -> int:
    return int(re.search(r"ssh received .*\(([\d,]+) bytes\)", pull_output).group(1).replace(",", ""))


def test_from_unboxing_to_autonomous_laps(loopback_pi, tmp_path):
    root = tmp_path / "pi" / "edgeact"  # a fresh Pi: no venv, no episodes
    pi = loopback_pi.alias
    ssh = ["--ssh-config", str(loopback_pi.config)]
    on_pi = ["--remote-dir", str(root), *ssh]
    episodes = tmp_path / "episodes"
    pi_episodes = root / "episodes"
    times: dict[str, float] = {}
    t_start = last = time.monotonic()

    def lap(stage: str) -> None:
        nonlocal last
        times[stage] = time.monotonic() - last
        last = time.monotonic()

    # 1. the runtime on the Pi, with the drive page: `edgeact drive` records there
    assert "setup: installed" in edgeact("deploy", pi, "--setup", *on_pi)
    no_torch = subprocess.run(["ssh", "-F", str(loopback_pi.config), pi, f"{root}/venv/bin/python -c 'import torch'"])
    assert no_torch.returncode != 0  # the ONNX runtime needs no torch on the Pi
    lap("deploy --setup (fresh venv on the Pi)")

    # 2. drive by hand from the phone and record; pull while the fourth episode is still being recorded
    drive = OnThePi(loopback_pi, root, f"{root}/venv/bin/edgeact drive --camera sim --actuator sim --record "
                    f"{pi_episodes} --record-fps {FPS} --size 96x128 --web 127.0.0.1:0 --no-qr --no-realtime")
    url = drive.wait_for(r"open (http\S+)").group(1)
    on_the_phone(url, lambda page: record_by_hand(page, episodes=3, seconds=3.0))

    async def start_fourth(page: Page) -> None:
        await page.send(type="record")
        await page.until(lambda s: s["recording"] and s["steps"] > 5)

    on_the_phone(url, start_fourth)
    lap("drive by hand, record 3 episodes")
    first = edgeact("data", "pull", pi, str(pi_episodes), "--out", str(episodes), *ssh)
    assert re.search(r"new +3: episode_000, episode_001, episode_002\n", first)
    assert "skipped       episode_003: being recorded" in first
    lap("data pull (1)")
    on_the_phone(url, stop_recording)
    report = drive.ctrl_c()
    assert "neutral at exit: yes" in report and "episode_003" in report
    lap("end the drive")

    # 3. look, train, export, quantize for the Pi 5
    edgeact("data", "view", str(episodes))
    assert (episodes / "view.html").is_file()
    runs = tmp_path / "runs"
    edgeact("train", "--data", str(episodes), "--out", str(runs / "r1"), "--preset", "tiny", "--steps", "10",
            "--batch-size", "4")
    lap("train r1 (tiny, 10 steps)")
    bundle = tmp_path / "bundle-r1"
    edgeact("export", "--checkpoint", str(runs / "r1" / "best"), "--out", str(bundle), "--frames", str(episodes))
    edgeact("quantize", str(bundle), "--calib", str(episodes), "--target", "pi5", "--frames", "16", "--heldout", "8",
            "--backends", "onnx-int8")
    lap("export + quantize r1")

    # 4. deploy (verified, smoke-tested on the Pi, switched); --setup again changes nothing
    deployed = edgeact("deploy", str(bundle), pi, "--setup", *on_pi)
    first_id = verify_local(bundle).bundle_id
    assert "setup: unchanged" in deployed and f"current -> bundles/{first_id}" in deployed
    assert "smoke check on the Pi: onnx-int8" in deployed
    lap("deploy r1")

    # 5. the policy drives on the Pi in auto mode; the person takes over where it errs, recorded
    drive = OnThePi(loopback_pi, root, f"{root}/venv/bin/edgeact drive --camera sim --actuator sim --model "
                    f"{root}/current --record {pi_episodes} --web 127.0.0.1:0 --no-qr --no-realtime")
    url = drive.wait_for(r"open (http\S+)").group(1)
    on_the_phone(url, lambda page: record_takeovers(page, episodes=2, seconds=3.0))
    report = drive.ctrl_c()
    assert int(re.search(r"interventions: (\d+)", report).group(1)) >= 2  # a late heartbeat may split one
    lap("auto mode with takeovers, record 2 episodes")

    # 6. pull again: only what is new moves (the fourth manual episode, finished after the first pull, and the
    #    two takeover episodes), and the Pi's card is freed of what is verified here
    second = edgeact("data", "pull", pi, str(pi_episodes), "--out", str(episodes), "--delete-after-verify", *ssh)
    assert re.search(r"new +3: episode_003, episode_004, episode_005\n", second)
    assert re.search(r"already here +3 ", second) and int(re.search(r"(\d+) takeovers", second).group(1)) >= 2
    new = [episodes / f"episode_{i:03d}" for i in (3, 4, 5)]
    new_bytes = sum(f.stat().st_size for d in new for f in d.rglob("*") if f.is_file() and not f.name.startswith("."))
    assert new_bytes < received_bytes(second) < new_bytes + 60_000  # the three new episodes, nothing else
    assert "deleted on the Pi after verification here: 6 episodes" in second
    assert not [p for p in pi_episodes.iterdir() if not p.name.startswith(".")]
    lap("data pull (2) --delete-after-verify")
    takeovers = {ep.name: ep for ep in load_episodes(episodes)}
    for name in ("episode_004", "episode_005"):
        ep = takeovers[name]
        assert Path(ep.meta["policy"]).name == first_id  # the drive ran the bundle just deployed
        flags = ep.interventions
        assert flags is not None and 0 < flags.sum() < len(ep)
        assert np.median(ep.actions[flags, 0]) == pytest.approx(-0.6, abs=0.1)  # the person's steering

    # 7. train again, takeover steps drawn 3x as often, and redeploy straight from the checkpoint
    retrained = edgeact("train", "--data", str(episodes), "--out", str(runs / "r2"), "--preset", "tiny", "--steps",
                        "10", "--batch-size", "4", "--intervention-weight", "3")
    assert "training steps are interventions, drawn 3x" in retrained
    lap("train r2 --intervention-weight 3")
    redeployed = edgeact("deploy", str(runs / "r2" / "best"), pi, "--calib", str(episodes), *on_pi)
    second_id = verify_local(runs / "r2" / "best-bundle").bundle_id
    assert second_id != first_id and f"current -> bundles/{second_id} (was {first_id})" in redeployed
    lap("export + quantize + deploy r2")

    # 8. autonomous: the rover drives on the new bundle
    run = OnThePi(loopback_pi, root, f"{root}/venv/bin/edgeact run --model {root}/current --camera sim "
                  "--actuator sim --duration 3 --rate 20 --no-realtime --status 0")
    run.proc.wait(timeout=120)
    run._reader.join(timeout=10)
    assert run.proc.returncode == 0 and "edgeact run: onnx-int8 (96, 128)" in "".join(run.lines)
    lap("edgeact run on the Pi (3 s)")

    total = time.monotonic() - t_start
    print(f"\njourney: {total:.0f} s in all (load average {Path('/proc/loadavg').read_text().split()[0]})")
    for stage, seconds in times.items():
        print(f"  {seconds:6.1f} s  {stage}")
    print(f"  pull 1 moved {received_bytes(first):,} bytes; pull 2 moved {received_bytes(second):,} bytes")
