"""The drive page over HTTPS in a real headless Chromium (Debian's chromium + chromedriver, via
selenium), with the certificate `edgeact drive --https` makes.

Two ways a browser comes to accept it: pinned (the test trusts exactly that certificate's key,
``--ignore-certificate-errors-spki-list``; every other certificate error still stops the page),
and the way a person on a phone does: the browser's warning, "Advanced", "Proceed".
Checked: the page and its socket work, the page is a secure context, nothing works without
the token, and after the first load the token is in no URL the browser asks for.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time

import pytest
from teleop_fakes import quiet_runtime

from edgeact.drive import Parts, open_parts
from edgeact.runtime.fake import DEFAULT_SPEC, FakePolicy
from edgeact.teleop.session import DriveConfig, DriveSession
from polling import wait_for

pytest.importorskip("selenium.webdriver", reason="selenium is in the dev extra")
pytest.importorskip("cryptography", reason="the drive extra")
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from edgeact.errors import ConfigError
from edgeact.teleop.headless import find_chromium, open_chromium

pytestmark = pytest.mark.slow
try:
    find_chromium()
except ConfigError as err:
    pytest.skip(str(err), allow_module_level=True)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    spec = dataclasses.replace(DEFAULT_SPEC, image_size=(90, 160))
    backend = FakePolicy(spec, latency_s=0.03, busy=0.3)
    camera, actuator = open_parts(Parts(camera="sim", actuator="sim"), spec.image_size)
    cfg = DriveConfig(runtime=quiet_runtime(50.0), port=0, https=True, cert_dir=str(tmp_path_factory.mktemp("tls")),
                      video_fps=15.0)
    s = DriveSession(backend, camera, actuator, cfg, has_policy=True)
    s.start()
    yield s
    report = s.stop()
    assert report.run.neutral_at_exit


@pytest.fixture(scope="module")
def pinned(session):
    driver, profile = open_chromium(trust_spki=session.certificate.spki_sha256, network_log=True)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def page(driver, expr: str):
    return driver.execute_script(f"return {expr};")


def base(session) -> str:
    return session.url.split("/?")[0]


def urls_asked(driver) -> list[str]:
    """Every URL the browser requested (pages, files, sockets) since the last call."""
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
        elif msg["method"] == "Network.webSocketCreated":
            urls.append(msg["params"]["url"])
    return urls


def forget_cookies(driver) -> None:
    driver.execute_cdp_cmd("Network.clearBrowserCookies", {})


def working(driver, session) -> bool:
    return wait_for(lambda: page(driver, "window.edgeact && window.edgeact.status !== null && "
                                         "window.edgeact.framesShown >= 3"), 20.0)


def test_without_the_token_page_files_and_socket_are_refused(pinned, session):
    forget_cookies(pinned)
    for path in ("/", "/static/drive.js"):
        pinned.get(base(session) + path)
        assert "needs its token" in pinned.find_element(By.TAG_NAME, "body").text, path
    opened = page(pinned, f"""new Promise((done) => {{
        const ws = new WebSocket("{base(session).replace('https', 'wss')}/ws");
        ws.onopen = () => done(true); ws.onerror = () => done(false); }})""")
    assert opened is False
    assert session.pilot.controller is None


def test_the_page_works_and_the_token_leaves_every_url_after_the_first_load(pinned, session):
    forget_cookies(pinned)
    urls_asked(pinned)  # drop what came before
    pinned.get(session.url)
    assert working(pinned, session)
    assert session.token not in pinned.current_url and pinned.current_url == base(session) + "/"
    pinned.refresh()  # a reload works from the cookie alone
    assert working(pinned, session)
    asked = urls_asked(pinned)
    with_token = [u for u in asked if session.token in u]
    assert with_token == [session.url], asked  # only the very first request carried it
    assert any(u.startswith("wss://") and u.endswith("/ws") for u in asked)  # the socket, without it
    assert page(pinned, "window.isSecureContext") is True
    assert page(pinned, "'wakeLock' in navigator") is True  # the Screen Wake Lock API: secure contexts only
    assert page(pinned, "document.cookie") == ""  # HttpOnly: no script on the page can read the token
    (cookie,) = [c for c in pinned.get_cookies() if c["name"] == session.server.cookie]
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    print(f"\ncertificate SHA-256 {session.certificate.sha256}; requests: {len(asked)}, with the token: 1")


def test_keys_drive_the_simulated_rover_over_the_secure_socket(pinned, session):
    ActionChains(pinned).key_down(Keys.ARROW_UP).perform()
    try:
        assert wait_for(lambda: session.actuator.outputs()[1] > 0.4, 10.0)
    finally:
        ActionChains(pinned).key_up(Keys.ARROW_UP).perform()
    assert wait_for(lambda: session.actuator.outputs() == (0.0, 0.0), 5.0)


def test_opened_from_a_link_on_another_site(pinned, session):
    """A SameSite=Strict cookie set by a load another site started is withheld from that load's
    redirects; the page moves on to its clean URL by itself, so this works too."""
    forget_cookies(pinned)
    pinned.get(f"data:text/html,<a id=go href='{session.url}'>drive</a>")
    pinned.find_element(By.ID, "go").click()
    assert working(pinned, session) and session.token not in pinned.current_url
    pinned.back()  # the tab's history holds the page before, not the token URL
    assert wait_for(lambda: pinned.current_url.startswith("data:"), 10.0)


def test_a_browser_that_refuses_the_socket_says_what_to_do(pinned, session):
    """Safari accepts the certificate for the page but refuses its socket: the page says so."""
    stub = pinned.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": """
        window.WebSocket = class { constructor() { setTimeout(() => this.onclose && this.onclose(), 20); }
                                   static get OPEN() { return 1; } };"""})
    try:
        pinned.get(base(session) + "/")
        assert wait_for(lambda: "--no-https" in pinned.find_element(By.ID, "banner").text, 15.0)
    finally:
        pinned.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": stub["identifier"]})


def test_a_person_accepting_the_certificate_warning_as_on_a_phone(session):
    driver, profile = open_chromium()  # trusts nothing: the browser warns as a phone's does
    try:
        driver.get(session.url)
        warning = driver.find_element(By.TAG_NAME, "body").text
        assert "NET::ERR_CERT_AUTHORITY_INVALID" in warning
        driver.find_element(By.ID, "details-button").click()  # "Advanced"
        driver.find_element(By.ID, "proceed-link").click()  # "Proceed to 127.0.0.1 (unsafe)"
        assert working(driver, session)  # the page, its files and the socket: the exception covers them all
        assert session.token not in driver.current_url
        assert page(driver, "window.isSecureContext") is True
        t0 = time.monotonic()
        ActionChains(driver).key_down(Keys.ARROW_UP).perform()
        try:
            assert wait_for(lambda: session.actuator.outputs()[1] > 0.4, 10.0)
        finally:
            ActionChains(driver).key_up(Keys.ARROW_UP).perform()
        print(f"\nafter accepting the warning: key -> rover throttle in {(time.monotonic() - t0) * 1e3:.0f} ms")
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
