from __future__ import annotations

import threading

import numpy as np
import pytest

from edgeact.sim.expert import ExpertDriver, ExpertNoise
from edgeact.sim.world import RoverSim

DT = 1 / 30


def drive(track: str, seconds: float, noise: ExpertNoise | None = None, seed: int = 0):
    sim = RoverSim(track, image_size=(24, 32), seed=seed)
    expert = ExpertDriver(sim.track, noise=noise, seed=seed)
    ctes = []
    for _ in range(int(seconds / DT)):
        act = expert.act(sim, DT)
        sim.step(float(act.command[0]), float(act.command[1]), DT)
        ctes.append(abs(sim.cross_track_m))
    return sim, np.array(ctes)


@pytest.mark.parametrize("track,seconds", [("oval", 35.0), ("winding", 55.0)])
def test_expert_completes_a_lap_without_leaving_the_road(track, seconds):
    sim, cte = drive(track, seconds)
    assert sim.laps >= 1.0
    assert sim.off_track_events == 0
    assert cte.mean() < 0.05 and cte.max() < 0.2
    assert len(sim.trajectory) == int(seconds / DT) + 1


@pytest.mark.parametrize("track", ["oval", "winding"])
def test_noisy_expert_recovers(track):
    sim, cte = drive(track, 50.0, ExpertNoise(), seed=3)
    assert sim.laps >= 0.9 and sim.off_track_events == 0
    assert cte.max() > 0.05  # the perturbations really pushed it off the centre line


def test_labels_are_the_clean_correction_during_perturbations():
    sim = RoverSim("oval", image_size=(24, 32))
    noise = ExpertNoise(events_per_second=30.0, steering_jitter=0.0, throttle_jitter=0.0)
    expert = ExpertDriver(sim.track, noise=noise)
    seen = False
    for _ in range(60):
        act = expert.act(sim, DT)
        clean = expert.control(sim.pose, sim.speed, sim.progress_s)
        np.testing.assert_allclose(act.label, clean, atol=1e-6)
        if act.perturbed:
            seen = True
            assert abs(act.command[0] - act.label[0]) > 0.1
        sim.step(float(act.command[0]), float(act.command[1]), DT)
    assert seen


def test_off_track_events_reset_and_state():
    sim = RoverSim("oval", image_size=(24, 32))
    assert sim.off_track_events == 0 and not sim.off_track and sim.laps == 0.0
    for _ in range(60):  # full right lock: leaves the road to the right
        sim.step(-1.0, 0.6, DT)
    assert sim.off_track and sim.off_track_events == 1 and sim.cross_track_m < -0.5
    x, y, yaw = sim.pose
    assert sim.speed > 0.5 and len(sim.trajectory) == 61 and sim.trajectory[-1][1:] == (x, y)
    sim.reset()
    assert sim.off_track_events == 0 and not sim.off_track and sim.pose == pytest.approx(sim.track.point_at(0.0))
    sim.reset(start_s=10.0, lateral_m=0.3)
    assert sim.cross_track_m == pytest.approx(0.3, abs=1e-3)


def test_step_and_render_from_two_threads_under_a_lock():
    sim = RoverSim("winding", image_size=(24, 32), seed=1)
    lock = threading.Lock()
    frames = []

    def camera():
        for _ in range(20):
            with lock:
                frames.append(sim.render().copy())

    t = threading.Thread(target=camera)
    t.start()
    for _ in range(50):
        with lock:
            sim.step(0.1, 0.4, DT)
    t.join()
    assert len(frames) == 20 and all(f.shape == (24, 32, 3) for f in frames)
