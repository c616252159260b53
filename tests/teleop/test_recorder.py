"""Recording while driving: the episode format, atomicity, re-record, erase, the cadence report."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from teleop_fakes import CountingCamera, Feed

from edgeact.data.episodes import load_episodes
from edgeact.teleop.recorder import Recorder, format_cadence
from polling import wait_for


@pytest.fixture
def rig(tmp_path):
    cam = CountingCamera(fps=60.0)
    feed = Feed()
    rec = Recorder(tmp_path / "eps", fps=30.0, camera=cam, executed=feed)
    cam.start()
    rec.start()
    yield rec, feed, tmp_path / "eps"
    rec.stop()
    cam.stop()


def record_steps(rec: Recorder, n: int) -> None:
    assert wait_for(lambda: rec.steps >= n, 10.0)


def test_episodes_hold_executed_commands_states_and_intervention_flags(rig):
    rec, feed, root = rig
    feed.set(0.25, 0.5)
    assert rec.toggle() is True
    record_steps(rec, 5)
    feed.set(-0.5, 0.2, intervention=True)
    record_steps(rec, 12)
    assert rec.toggle() is False
    assert wait_for(lambda: rec.episodes == 1, 5.0)
    (ep,) = load_episodes(root, validate=True)
    assert ep.name == "episode_000" and ep.fps == 30 and ep.image_size == (24, 32)
    assert ep.state_from_columns and ep.interventions is not None
    acts = ep.actions
    assert all(np.allclose(a, (0.25, 0.5)) or np.allclose(a, (-0.5, 0.2)) for a in acts)
    assert np.array_equal(ep.interventions, np.isclose(acts[:, 0], -0.5))  # flag follows the takeover steps
    assert np.allclose(ep.states[1:], acts[:-1]) and np.allclose(ep.states[0], 0.0)  # state: executed at t-1
    cad = rec.cadence[0]
    assert cad.steps == len(ep) and cad.target_hz == 30.0 and cad.interventions == int(ep.interventions.sum())
    assert ep.meta["cadence"]["steps"] == len(ep) and ep.meta["source"] == "edgeact drive"
    # a 60 fps camera is subsampled onto the 30 fps schedule
    assert np.median(np.diff(ep.timestamps)) == pytest.approx(1 / 30, rel=0.35)
    assert "episode_000" in format_cadence(rec.cadence)


def test_rerecord_drops_the_episode_in_progress_and_erase_last_deletes_this_sessions_last(rig, tmp_path):
    rec, feed, root = rig
    feed.set(0.1, 0.1)
    rec.toggle()
    record_steps(rec, 4)
    rec.toggle()
    assert wait_for(lambda: rec.episodes == 1, 5.0)
    rec.toggle()
    record_steps(rec, 6)
    rec.rerecord()
    assert wait_for(lambda: rec.steps < 3, 5.0) and rec.recording  # started over, still recording
    record_steps(rec, 3)
    rec.toggle()
    assert wait_for(lambda: rec.episodes == 2, 5.0)
    assert sorted(p.name for p in root.iterdir()) == ["episode_000", "episode_001"]
    assert rec.erase_last() == "episode_001"
    assert [e.name for e in load_episodes(root)] == ["episode_000"]  # gone from the dataset at once
    # its files are deleted by the recorder's thread (seconds on a slow card), not the page's server
    assert wait_for(lambda: sorted(p.name for p in root.iterdir()) == ["episode_000"], 5.0)
    assert rec.erase_last() == "episode_000"
    assert rec.erase_last() is None  # never older data


def test_episodes_name_their_session_and_policy_and_erase_survives_a_pull_that_took_the_episode(tmp_path):
    cam, feed = CountingCamera(fps=60.0), Feed()
    rec = Recorder(tmp_path / "eps", 30.0, cam, feed, meta={"policy": "/home/pi/edgeact/bundles/rover-abc"})
    cam.start()
    rec.start()
    try:
        feed.set(0.1, 0.2)
        rec.toggle()
        record_steps(rec, 3)
        rec.toggle()
        assert wait_for(lambda: rec.episodes == 1, 5.0)
        (ep,) = load_episodes(tmp_path / "eps")
        assert ep.meta["policy"] == "/home/pi/edgeact/bundles/rover-abc" and ep.meta["session"] == rec.session
        assert ep.meta["session"].endswith("Z")  # UTC: `edgeact data view` groups a session's episodes
        shutil.rmtree(ep.path)  # `edgeact data pull --delete-after-verify` took it meanwhile
        assert rec.erase_last() is None  # no error from the page's button
    finally:
        rec.stop()
        cam.stop()


def test_stop_and_start_pressed_together_keep_the_episode(rig):
    rec, feed, root = rig
    feed.set(0.2, 0.2)
    rec.toggle()
    record_steps(rec, 5)
    rec.toggle()
    rec.toggle()  # R R faster than a frame: the first episode is saved, the next one starts
    assert wait_for(lambda: rec.episodes == 1 and rec.recording, 5.0)
    record_steps(rec, 3)
    rec.next_episode()
    assert wait_for(lambda: rec.episodes == 2, 5.0)
    record_steps(rec, 3)
    rec.toggle()
    assert wait_for(lambda: rec.episodes == 3, 5.0)
    assert [e.name for e in load_episodes(root, validate=True)] == ["episode_000", "episode_001", "episode_002"]
    assert sorted(p.name for p in root.iterdir()) == ["episode_000", "episode_001", "episode_002"]  # nothing hidden


def test_a_crash_mid_episode_loses_only_that_episode(tmp_path):
    """A process killed while recording leaves earlier episodes whole and no readable half episode."""
    root = tmp_path / "eps"
    script = textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from teleop_fakes import CountingCamera, Feed
        from edgeact.teleop.recorder import Recorder
        cam, feed = CountingCamera(fps=60.0), Feed()
        feed.set(0.2, 0.3)
        rec = Recorder({str(root)!r}, 30.0, cam, feed)
        cam.start(); rec.start()
        rec.toggle()
        while rec.steps < 5: time.sleep(0.01)
        rec.toggle()
        while rec.episodes < 1: time.sleep(0.01)
        rec.toggle()
        while rec.steps < 5: time.sleep(0.01)
        print("recording", flush=True)
        os._exit(9)  # no cleanup at all, as a power cut
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert "recording" in out.stdout, out.stderr
    eps = load_episodes(root, validate=True)
    assert [e.name for e in eps] == ["episode_000"]
    assert any(p.name.startswith(".episode_001") for p in root.iterdir())  # the unfinished one, hidden
    rec = Recorder(root, 30.0, CountingCamera(), Feed())
    rec.start()  # a new session cleans the leftover up
    rec.stop()
    assert [p.name for p in root.iterdir()] == ["episode_000"]


def test_auto_record_follows_the_throttle(tmp_path, monkeypatch):
    from edgeact.teleop import recorder as R

    monkeypatch.setattr(R, "AUTO_IDLE_S", 0.3)
    cam, feed = CountingCamera(fps=60.0), Feed()
    rec = Recorder(tmp_path / "eps", 30.0, cam, feed, auto_record=True)
    cam.start()
    rec.start()
    try:
        time.sleep(0.3)
        assert not rec.recording  # standing still: nothing recorded
        feed.set(0.0, 0.4)
        assert wait_for(lambda: rec.recording and rec.steps >= 5, 5.0)
        feed.set(0.0, 0.0)
        assert wait_for(lambda: rec.episodes == 1 and not rec.recording, 5.0)
    finally:
        rec.stop()
        cam.stop()
    (ep,) = load_episodes(tmp_path / "eps")
    assert np.isclose(ep.actions[0, 1], 0.4) and np.isclose(ep.actions[-1, 1], 0.0)  # ends with the stop
