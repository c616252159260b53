"""A headless Chromium on the drive page, for the benchmark and the tests (selenium, the dev extra).

Uses the system's browser (Debian: ``apt install chromium chromium-driver``); nothing is
downloaded.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from edgeact.errors import ConfigError

PHONE_VIEWPORT = (412, 915)  # CSS pixels of a common phone


def find_chromium() -> tuple[str, str]:
    """(browser, chromedriver) paths; ConfigError naming the packages when either is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if driver is None and os.path.exists("/usr/bin/chromedriver"):  # Debian's, outside a venv's PATH
        driver = "/usr/bin/chromedriver"
    if not browser or not driver:
        raise ConfigError("needs a Chromium and its driver: apt install chromium chromium-driver "
                          "(scripts/install-test-system-packages.sh installs them)")
    return browser, driver


def open_chromium(viewport: tuple[int, int] = PHONE_VIEWPORT, trust_spki: str | None = None,
                  network_log: bool = False) -> tuple[Any, Path]:
    """A headless Chromium (selenium WebDriver) and its profile folder (unique: tells its processes apart).

    ``trust_spki``: the base64 SHA-256 of a certificate's public key (``Certificate.spki_sha256``)
    the browser accepts although no authority signed it: a pin on that one key, every other
    certificate error still stops the page. ``network_log``: keep the DevTools network events
    (``driver.get_log("performance")``), for tests that look at every URL the page asked for."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as err:
        raise ConfigError("needs selenium: pip install 'edgeact[dev]'") from err
    browser, driver_path = find_chromium()
    profile = Path(tempfile.mkdtemp(prefix="edgeact-chromium-"))
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={viewport[0]},{viewport[1]}", "--force-device-scale-factor=1",
                f"--user-data-dir={profile}"):  # the SPKI pin needs a user data dir to take effect
        opts.add_argument(arg)
    if trust_spki:
        opts.add_argument(f"--ignore-certificate-errors-spki-list={trust_spki}")
    if network_log:
        opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(driver_path))
    driver.set_page_load_timeout(30)
    return driver, profile


def renice(marker: str, niceness: int = 19) -> int:
    """Lower the priority of every process whose command line holds ``marker``; how many (Linux /proc).

    The benchmark's browser stands in for a phone: on the rover it does not share the Pi's CPU,
    so here it only gets what the drive leaves."""
    count = 0
    for pid in _pids(marker):
        try:
            os.setpriority(os.PRIO_PROCESS, pid, niceness)
            count += 1
        except OSError:
            continue
    return count


def _pids(marker: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                found.append(int(pid))
        except OSError:
            continue
    return found


def processes_cpu_seconds(marker: str) -> float:
    """CPU seconds used so far by every process whose command line holds ``marker`` (Linux /proc)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in _pids(marker):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def processes_memory_mb(marker: str) -> float:
    """Proportional set size (PSS: shared pages split between their users), in MB, summed over every
    process whose command line holds ``marker``: a multi-process browser's memory without counting
    its shared libraries once per process (Linux /proc)."""
    return sum(_status_kb(pid, "smaps_rollup", "Pss:") for pid in _pids(marker)) / 1024


def own_rss_mb() -> float:
    """This process's resident set size in MB (Linux /proc)."""
    return _status_kb(os.getpid(), "status", "VmRSS:") / 1024


def _status_kb(pid: int, file: str, key: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
            if line.startswith(key):
                return float(line.split()[1])
    except OSError:
        pass
    return 0.0
