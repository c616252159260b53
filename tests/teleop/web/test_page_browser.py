"""The drive page in a real headless Chromium (Debian's chromium + chromedriver, via selenium)
against `edgeact drive --camera sim --actuator sim`: the simulated rover, the simulated
Arduino on a pty (real pyserial, real bytes) and a stand-in policy.

One session and one browser serve the whole module (in order) to keep CI time small.
Timings are printed, never asserted: the machine is shared. Screenshots go to the pytest
temporary directory (printed) for a person to look at.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from teleop_fakes import quiet_runtime

from edgeact.data.episodes import load_episodes
from edgeact.drive import Parts, open_parts
from edgeact.runtime.fake import DEFAULT_SPEC, FakePolicy
from edgeact.runtime.safety import ESTOP
from edgeact.teleop.recorder import format_cadence
from edgeact.teleop.session import DriveConfig, DriveSession
from polling import wait_for

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the dev extra")
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
if not CHROMIUM or not os.path.exists(CHROMEDRIVER):
    pytest.skip("needs Debian's chromium and chromium-driver (scripts/install-test-system-packages.sh)",
                allow_module_level=True)

RATE_HZ = 50.0
PHONE = (412, 915)  # a phone-sized viewport (CSS px)


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    """EDGEACT_SCREENSHOT_DIR keeps them somewhere stable (pytest rotates its temporary folders)."""
    keep = os.environ.get("EDGEACT_SCREENSHOT_DIR")
    d = Path(keep) if keep else tmp_path_factory.mktemp("drive-page-screenshots")
    d.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {d}")
    return d


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    spec = dataclasses.replace(DEFAULT_SPEC, image_size=(180, 320))  # a small sim render: cheap frames
    backend = FakePolicy(spec, latency_s=0.03, busy=0.3)
    camera, actuator = open_parts(Parts(camera="sim", actuator="sim"), backend.spec.image_size)
    cfg = DriveConfig(runtime=quiet_runtime(RATE_HZ), port=0, record_dir=str(tmp_path_factory.mktemp("episodes")),
                      video_fps=15.0)
    s = DriveSession(backend, camera, actuator, cfg, has_policy=True)
    s.start()
    yield s
    report = s.stop()
    print(report.run.format_table())
    assert report.run.neutral_at_exit


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={PHONE[0]},{PHONE[1]}", "--force-device-scale-factor=1"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def outputs(session) -> tuple[float, float]:
    return session.actuator.outputs()  # what the simulated Arduino's servo and ESC are set to


def page(driver, expr: str):
    return driver.execute_script(f"return {expr};")


def open_page(driver, session) -> None:
    driver.get(session.url)
    assert wait_for(lambda: page(driver, "window.edgeact && window.edgeact.status !== null"), 15.0)


def key_down(driver, key) -> None:
    ActionChains(driver).key_down(key).perform()


def key_up(driver, key) -> None:
    ActionChains(driver).key_up(key).perform()


def test_no_token_no_page(browser, session):
    browser.get(session.url.split("?")[0])
    assert "needs its token" in browser.find_element(By.TAG_NAME, "body").text
    assert session.pilot.controller is None


def test_frames_arrive_and_keys_move_the_simulated_rover(browser, session, shots):
    open_page(browser, session)
    assert wait_for(lambda: page(browser, "window.edgeact.framesShown") >= 5, 15.0)
    assert outputs(session) == (0.0, 0.0)  # starts neutral: nothing moves until a person acts
    browser.save_screenshot(str(shots / "1-waiting.png"))
    first = page(browser, "document.getElementById('video').toDataURL('image/jpeg', 0.9)")
    key_down(browser, Keys.ARROW_UP)
    try:
        assert wait_for(lambda: outputs(session)[1] > 0.4, 10.0)  # the 0.5 max-throttle slider
        key_down(browser, Keys.ARROW_LEFT)
        assert wait_for(lambda: outputs(session)[0] < -0.9, 10.0)
        assert wait_for(lambda: session.camera.stats()["speed"] > 0.1, 10.0)  # the simulated rover drives
        time.sleep(0.5)
        browser.save_screenshot(str(shots / "2-driving.png"))
        moved = page(browser, "document.getElementById('video').toDataURL('image/jpeg', 0.9)")
        assert moved != first  # the video shows the rover moving
        assert page(browser, "window.edgeact.status.you") is True
    finally:
        key_up(browser, Keys.ARROW_LEFT)
        key_up(browser, Keys.ARROW_UP)
    assert wait_for(lambda: outputs(session) == (0.0, 0.0), 5.0)
    lat = sorted(page(browser, "window.edgeact.latencies"))
    print(f"video latency capture->shown: p50 {lat[len(lat) // 2]:.0f} ms over {len(lat)} frames")


def test_touch_joystick_and_browser_gamepad_drive(browser, session):
    pad = browser.find_element(By.ID, "pad")
    w = pad.size["width"]
    # a finger (pointer) held up and right of the centre
    ActionChains(browser).move_to_element_with_offset(pad, int(w * 0.3), -int(w * 0.3)).click_and_hold().perform()
    try:
        assert wait_for(lambda: outputs(session)[0] > 0.4 and outputs(session)[1] > 0.2, 10.0)
    finally:
        ActionChains(browser).release().perform()
    assert wait_for(lambda: outputs(session) == (0.0, 0.0), 5.0)
    # a browser gamepad (standard mapping): left stick X steers, right stick Y throttles, B stops
    browser.execute_script("""
        window.fakePad = {axes: [-0.8, 0, 0, -1], buttons: Array.from({length: 16}, () => ({pressed: false}))};
        navigator.getGamepads = () => [window.fakePad];""")
    assert wait_for(lambda: outputs(session)[0] < -0.7 and outputs(session)[1] > 0.4, 10.0)
    browser.execute_script("window.fakePad.buttons[1] = {pressed: true};")  # B: emergency stop
    assert wait_for(lambda: session.runtime.estop.triggered and outputs(session) == (0.0, 0.0), 5.0)
    browser.execute_script("window.fakePad.buttons[1] = {pressed: false}; window.fakePad.axes = [0, 0, 0, 0];")
    time.sleep(0.2)
    browser.execute_script("window.fakePad.buttons[1] = {pressed: true};")  # B again: release
    assert wait_for(lambda: not session.runtime.estop.triggered, 5.0)
    browser.execute_script("navigator.getGamepads = () => [];")
    assert outputs(session) == (0.0, 0.0)


def test_stop_latches_neutral_within_one_period_and_stays(browser, session, shots):
    board = session.actuator.sim
    key_down(browser, Keys.ARROW_UP)
    try:
        assert wait_for(lambda: outputs(session)[1] > 0.4, 10.0)
        t_click = time.monotonic()
        browser.find_element(By.ID, "stop").click()
        assert wait_for(lambda: outputs(session) == (0.0, 0.0), 5.0)
        print(f"STOP click -> Arduino neutral: {(time.monotonic() - t_click) * 1e3:.0f} ms (includes the browser)")
        latch = session.runtime.safety.latched[ESTOP]
        # the tick that saw the stop sent neutral: every tick from the latch on is neutral
        tel = session.runtime.telemetry
        with tel._lock:
            t = np.array(tel.tick_t)
            neutral = np.array(tel.tick_neutral, dtype=bool)
        assert neutral[t >= latch.t_start].all()
        n_before = len(board.commands)
        held = []
        for _ in range(10):  # the key is still held: the stop holds
            time.sleep(0.1)
            held.append(outputs(session))
        assert set(held) == {(0.0, 0.0)} and len(board.commands) > n_before  # still talking, all neutral
        browser.save_screenshot(str(shots / "3-stopped.png"))
        assert "EMERGENCY STOP" in browser.find_element(By.ID, "banner").text
        ActionChains(browser).send_keys(Keys.SPACE).perform()  # space again: released on purpose
        assert wait_for(lambda: outputs(session)[1] > 0.4, 10.0)
        assert ESTOP not in session.runtime.safety.latched
    finally:
        key_up(browser, Keys.ARROW_UP)
    assert wait_for(lambda: outputs(session) == (0.0, 0.0), 5.0)


def test_a_silent_or_closed_page_goes_neutral(browser, session):
    key_down(browser, Keys.ARROW_UP)
    assert wait_for(lambda: outputs(session)[1] > 0.4, 10.0)
    # the page hangs with its socket open (a phone asleep, a frozen tab): the heartbeat catches it
    t0 = time.monotonic()
    browser.execute_script("const end = Date.now() + 1500; while (Date.now() < end) {}")
    silent_ms = (time.monotonic() - t0) * 1e3
    assert outputs(session) == (0.0, 0.0)
    assert "silent" in session.pilot.held
    events = [e for e in session.runtime.telemetry.events if e["kind"] == "control-lost"]
    print(f"page silent for {silent_ms:.0f} ms -> neutral; event: {events[-1]['message']}")
    time.sleep(0.5)  # the page is back, the key still down in its state, but it did not act again
    assert outputs(session) == (0.0, 0.0)
    key_up(browser, Keys.ARROW_UP)
    key_down(browser, Keys.ARROW_UP)  # a person acts: it drives again
    assert wait_for(lambda: outputs(session)[1] > 0.4, 10.0)
    # closing the tab: the socket closes and the rover goes neutral
    browser.execute_script("window.open('about:blank', '_blank');")
    main, blank = browser.window_handles[0], browser.window_handles[-1]
    t0 = time.monotonic()
    browser.close()
    assert wait_for(lambda: outputs(session) == (0.0, 0.0), 5.0)
    print(f"page closed -> neutral after {(time.monotonic() - t0) * 1e3:.0f} ms")
    browser.switch_to.window(blank)
    assert main not in browser.window_handles


def test_auto_lets_the_policy_drive_and_a_key_is_an_intervention(browser, session, shots):
    open_page(browser, session)
    ActionChains(browser).send_keys("r").perform()  # record
    assert wait_for(lambda: session.recorder.recording, 5.0)
    browser.find_element(By.CSS_SELECTOR, '#modes button[data-mode="auto"]').click()
    assert wait_for(lambda: session.pilot.mode.value == "auto", 5.0)
    assert wait_for(lambda: abs(outputs(session)[1] - 0.3) < 1e-3, 10.0)  # the stand-in policy's throttle
    assert wait_for(lambda: (page(browser, "window.edgeact.status.chunk") or []).__len__() > 5, 5.0)
    time.sleep(1.0)  # nobody touches anything: the policy keeps driving
    assert abs(outputs(session)[1] - 0.3) < 1e-3
    browser.save_screenshot(str(shots / "4-auto.png"))
    key_down(browser, Keys.ARROW_DOWN)  # a person takes over: brake/reverse
    try:
        assert wait_for(lambda: outputs(session)[1] < -0.4, 10.0)
        assert wait_for(lambda: session.executed().intervention, 5.0)
        time.sleep(0.5)
        browser.save_screenshot(str(shots / "5-intervention.png"))
    finally:
        key_up(browser, Keys.ARROW_DOWN)
    assert wait_for(lambda: abs(outputs(session)[1] - 0.3) < 1e-3, 10.0)  # handed back
    time.sleep(0.5)
    ActionChains(browser).send_keys("r").perform()  # stop recording
    assert wait_for(lambda: session.recorder.episodes == 1, 10.0)
    (ep,) = load_episodes(session.config.record_dir)
    assert ep.interventions is not None and 0 < ep.interventions.sum() < len(ep)
    person = ep.actions[ep.interventions]
    assert (person[:, 1] < 0).any() and np.allclose(ep.actions[~ep.interventions][-5:, 1], 0.3, atol=1e-3)
    assert session.pilot.interventions >= 1
    ActionChains(browser).send_keys("m").perform()  # M: next mode, auto -> user
    assert wait_for(lambda: session.pilot.mode.value == "user", 5.0)


def test_a_second_controller_takes_over_and_an_idle_one_never_drives(browser, session, shots):
    async def second_page(active: bool, seconds: float) -> None:
        url = session.url.replace("http", "ws").replace("/?", "/ws?")
        async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                await ws.send_json({"type": "control", "steering": 0.8, "throttle": 1.0, "active": active})
                await asyncio.sleep(0.1)

    key_down(browser, Keys.ARROW_UP)
    try:
        assert wait_for(lambda: outputs(session)[1] > 0.4, 10.0)
        asyncio.run(second_page(active=False, seconds=0.8))  # a watcher with values but no person
        assert page(browser, "window.edgeact.status.you") is True and abs(outputs(session)[0]) < 1e-6
        runner = threading.Thread(target=lambda: asyncio.run(second_page(active=True, seconds=1.5)))
        runner.start()
        assert wait_for(lambda: outputs(session)[0] > 0.7, 10.0)  # the second page drives now
        assert wait_for(lambda: page(browser, "window.edgeact.status.you") is False, 5.0)
        browser.save_screenshot(str(shots / "6-watching.png"))
        assert "watching" in browser.find_element(By.ID, "b-ctl").text
        runner.join()
        # it went away while driving: neutral, and the first page does not get control back by itself
        assert wait_for(lambda: outputs(session) == (0.0, 0.0), 5.0)
        time.sleep(0.4)
        assert outputs(session) == (0.0, 0.0)
    finally:
        key_up(browser, Keys.ARROW_UP)


def test_a_recorded_episode_loads_in_train_and_data_view(browser, session, tmp_path):
    ActionChains(browser).send_keys("r").perform()
    assert wait_for(lambda: session.recorder.recording, 5.0)
    key_down(browser, Keys.ARROW_UP)
    time.sleep(1.0)
    key_up(browser, Keys.ARROW_UP)
    ActionChains(browser).send_keys("r").perform()
    assert wait_for(lambda: session.recorder.episodes == 2, 10.0)
    data = session.config.record_dir
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-m", "edgeact.cli", "train", "--data", data, "--out", str(tmp_path / "run"),
                          "--steps", "2", "--eval-every", "2", "--batch-size", "2", "--intervention-weight", "4"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "intervention" in out.stdout and (tmp_path / "run" / "best" / "model.safetensors").is_file()
    view = subprocess.run([sys.executable, "-m", "edgeact.cli", "data", "view", data, "--out",
                           str(tmp_path / "v.html")], capture_output=True, text=True, timeout=120)
    assert view.returncode == 0, view.stderr
    html = (tmp_path / "v.html").read_text()
    assert html.count('class="ep"') == 2 and "intervention steps" in html and 'class="person"' in html
    print(format_cadence(session.recorder.cadence))
