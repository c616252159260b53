"""Recording onto a disk that fills up, or that stalls, while the simulated rover drives.

The disk is real: a tmpfs mounted with a size limit (root can; CI runs as root, and there a
mount that fails fails the test, it does not skip). The rover is `edgeact drive --camera sim
--actuator sim` with a stand-in policy in auto mode: the simulated Arduino on a pty records
every command it received, so the tests read what the rover was actually told to do.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from teleop_fakes import quiet_runtime

from edgeact.data.episodes import load_episodes
from edgeact.drive import Parts, open_parts
from edgeact.runtime.fake import DEFAULT_SPEC, FakePolicy
from edgeact.teleop.messages import SetMode
from edgeact.teleop.session import DriveConfig, DriveSession
from polling import wait_for

pytestmark = pytest.mark.slow
POLICY_THROTTLE = 0.3  # FakePolicy's


@pytest.fixture
def small_disk(tmp_path):
    """A 640 KiB filesystem: an episode of a few dozen small frames fills it."""
    mount = tmp_path / "sd"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root (CI runs the suite as root)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=640k,mode=0755", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"could not mount a size-limited tmpfs as root: {done.stderr.strip()} (this test needs it)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def drive_session(record_dir: Path, on_record_error: str) -> DriveSession:
    spec = dataclasses.replace(DEFAULT_SPEC, image_size=(90, 160))
    backend = FakePolicy(spec, latency_s=0.02, busy=0.3)
    camera, actuator = open_parts(Parts(camera="sim", actuator="sim"), spec.image_size)
    cfg = DriveConfig(runtime=quiet_runtime(50.0), port=0, record_dir=str(record_dir), on_record_error=on_record_error)
    session = DriveSession(backend, camera, actuator, cfg, has_policy=True)
    session.pilot.set_mode("auto")  # the policy drives, nobody touches anything
    return session


def throttle(session) -> float:
    return session.actuator.outputs()[1]  # what the simulated Arduino's ESC is set to


def record_one_episode(session, steps: int = 10) -> None:
    rec = session.recorder
    rec.toggle()
    assert wait_for(lambda: rec.steps >= steps, 20.0)
    rec.toggle()
    assert wait_for(lambda: rec.episodes == 1, 10.0)


def fill_the_disk(session) -> float:
    """Record until a write fails; the board's clock when the error was seen."""
    session.recorder.toggle()
    assert wait_for(lambda: session.recorder.error is not None, 60.0), "the disk never filled"
    return session.actuator.sim._clock()


def only_the_first_episode_is_left(root: Path) -> None:
    (ep,) = load_episodes(root, validate=True)  # every frame decodes, data.csv matches them
    assert ep.name == "episode_000" and len(ep) >= 10
    assert sorted(os.listdir(root)) == ["episode_000"]  # no half episode, not even a hidden one


@pytest.mark.parametrize("on_record_error", ["neutral", "keep-driving"])
def test_a_full_disk_discards_the_episode_keeps_the_others_and_the_rover_obeys_the_setting(small_disk,
                                                                                            on_record_error):
    root = small_disk / "episodes"
    session = drive_session(root, on_record_error)
    session.start()
    try:
        assert wait_for(lambda: abs(throttle(session) - POLICY_THROTTLE) < 1e-3, 20.0)  # the policy drives
        record_one_episode(session)
        t_error = fill_the_disk(session)
        error = session.recorder.error
        print(f"\n{error}")
        assert "disk is full" in error and "episode_001 discarded" in error and "earlier episodes are intact" in error
        assert not session.recorder.recording and session.status()["record_error"] == error
        only_the_first_episode_is_left(root)
        board = session.actuator.sim
        if on_record_error == "neutral":
            assert wait_for(lambda: throttle(session) == 0.0, 5.0)
            after = [c for c in list(board.commands) if c.t > t_error]
            first = next(i for i, c in enumerate(after) if c.throttle == 0.0 and c.steering == 0.0)
            assert wait_for(lambda: len(board.commands) > len(after) + 25, 10.0)  # half a second more of ticks
            later = [c for c in list(board.commands) if c.t > t_error][first:]
            assert all(c.steering == 0.0 and c.throttle == 0.0 for c in later)  # neutral, and it stays so
            assert error in session.status()["held"] and session.pilot.controller is None
            session.apply("page 1", SetMode("auto"))  # a person acts: the policy drives again
            assert wait_for(lambda: abs(throttle(session) - POLICY_THROTTLE) < 1e-3, 10.0)
        else:
            n = len(board.commands)
            assert wait_for(lambda: len(board.commands) > n + 25, 10.0)
            # still driving: the policy's commands reach the Arduino after the error, and no tick was
            # held neutral for it (a stale chunk on a loaded machine may hold one; that is the runtime's rule)
            assert wait_for(lambda: any(c.t > t_error and abs(c.throttle - POLICY_THROTTLE) < 1e-3
                                        for c in list(board.commands)), 10.0)
            lost = [e for e in session.runtime.telemetry.events if e["kind"] == "control-lost"]
            assert not lost and "recording" not in session.pilot.held  # the pilot was never told to hold
        session.recorder.toggle()  # the failed episode freed its space: recording works again
        assert wait_for(lambda: session.recorder.steps >= 3, 20.0) and session.recorder.error is None
        session.recorder.toggle()
        assert wait_for(lambda: session.recorder.episodes == 2 or session.recorder.error is not None, 20.0)
    finally:
        report = session.stop()
    assert report.run.neutral_at_exit
    names = [e.name for e in load_episodes(root, validate=True)]
    assert names[0] == "episode_000" and len(names) <= 2


def test_the_page_says_why_recording_stopped_and_that_the_rover_holds(small_disk):
    from edgeact.errors import ConfigError
    from edgeact.teleop.headless import open_chromium

    try:
        driver, profile = open_chromium()
    except ConfigError as err:
        pytest.skip(str(err))
    session = drive_session(small_disk / "episodes", "neutral")
    session.start()
    try:
        driver.get(session.url)
        assert wait_for(lambda: driver.execute_script("return window.edgeact && window.edgeact.status !== null"),
                        15.0)
        record_one_episode(session)
        fill_the_disk(session)
        banner = driver.find_element("id", "banner")
        assert wait_for(lambda: "disk is full" in banner.text, 10.0)
        assert "episode_001 discarded" in banner.text and "neutral until a person acts" in banner.text
        print(f"\nthe page: {banner.text}")
    finally:
        session.stop()
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_a_stalled_disk_never_stalls_the_control_loop_or_the_page(tmp_path, monkeypatch):
    """Every write of the recorder blocks (a card that stops answering): ticks, commands and the
    page's state keep coming; when the card answers again, recording goes on."""
    import edgeact.data.episodes as episodes

    stalled, release = threading.Event(), threading.Event()
    real_write = Path.write_bytes

    def slow_write(path: Path, data: bytes) -> int:
        if path.suffix == ".jpg":
            stalled.set()
            release.wait(30.0)  # blocked in the kernel, as a write to a stalled SD card is (the GIL is free)
        return real_write(path, data)

    monkeypatch.setattr(episodes.Path, "write_bytes", slow_write)
    session = drive_session(tmp_path / "episodes", "neutral")
    session.start()
    try:
        assert wait_for(lambda: abs(throttle(session) - POLICY_THROTTLE) < 1e-3, 20.0)
        session.recorder.toggle()
        assert stalled.wait(20.0)
        ticks, commands = len(session.runtime.telemetry.tick_t), len(session.actuator.sim.commands)
        # while the recorder's thread is stuck: 100 more control ticks, sent and received
        assert wait_for(lambda: len(session.runtime.telemetry.tick_t) > ticks + 100, 20.0)
        assert wait_for(lambda: len(session.actuator.sim.commands) > commands + 90, 20.0)
        assert abs(throttle(session) - POLICY_THROTTLE) < 1e-3 and session.status()["recording"]
        assert session.runtime.safety.reasons() == []  # no fault: the stall is the recorder's alone
        release.set()
        assert wait_for(lambda: session.recorder.steps >= 5, 20.0)
        session.recorder.toggle()
        assert wait_for(lambda: session.recorder.episodes == 1, 20.0)
    finally:
        release.set()
        report = session.stop()
    assert report.cadence[0].dropped > 0  # the stalled slots are counted, not queued
    print(f"\nstalled recorder: {report.cadence[0].dropped} slots dropped; control missed "
          f"{report.run.missed_deadlines} deadlines")


def test_a_full_disk_ends_the_telemetry_file_not_the_run(small_disk):
    """`--telemetry FILE` on the card that filled: the writer stops, the run and its in-memory record go on,
    and nothing piles up in memory for a file that can take no more."""
    from edgeact.runtime.telemetry import Telemetry

    tel = Telemetry(small_disk / "telemetry.jsonl")
    tel.start()
    try:
        ticks = 0
        while tel.write_error is None and ticks < 200_000:
            tel.tick(float(ticks), 0.0, 0.01, False, 0.1, 0.2, False, 0.03, 0.001, why="x" * 200)
            ticks += 1
            if ticks % 1000 == 0:
                wait_for(lambda: tel._queue.qsize() < 100 or tel.write_error is not None, 5.0)
        assert tel.write_error is not None and "No space left on device" in tel.write_error
        left = tel._queue.qsize()
        for i in range(10_000):  # the run goes on
            tel.tick(float(ticks + i), 0.0, 0.01, False, 0.1, 0.2, False, 0.03, 0.001)
        assert tel._queue.qsize() == left and len(tel.tick_t) == ticks + 10_000
    finally:
        tel.stop()
    print(f"\n{tel.write_error} (after {ticks} ticks)")
