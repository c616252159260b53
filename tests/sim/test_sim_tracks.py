"""The track set: shapes, directions, varying width, appearance randomization, multi-track recording."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgeact.data.episodes import load_episodes
from edgeact.errors import ConfigError
from edgeact.sim.record import record_episodes
from edgeact.sim.render import Appearance, Renderer
from edgeact.sim.rover import RoverParams
from edgeact.sim.track import make_track, parse_tracks, track_names
from edgeact.sim.world import RoverSim


def rover_turning_radius() -> float:
    p = RoverParams()
    beta = math.atan(0.5 * math.tan(math.radians(p.max_steer_deg)))
    return (p.wheelbase_m / 2) / math.sin(beta)


def test_track_set_has_both_bend_directions_tight_hairpins_and_varying_width():
    tracks = {n: make_track(n) for n in track_names()}
    assert set(tracks) >= {"oval", "winding", "chicane", "hairpin", "peanut", "narrows"}
    for t in tracks.values():
        assert np.linalg.norm(t.points[0] - t.points[-1]) < 2 * t.spacing  # closed
        assert t.min_radius > rover_turning_radius()  # drivable
    assert rover_turning_radius() < tracks["hairpin"].min_radius < 1.5 * rover_turning_radius()
    # right-hand bends while driving the default (counter-clockwise) direction
    for name in ("chicane", "hairpin", "peanut", "winding"):
        assert tracks[name].curvature.min() < -0.2, name
    assert tracks["oval"].curvature.min() > -0.01
    widths = tracks["narrows"].widths
    assert widths.min() == pytest.approx(0.7, abs=0.02) and widths.max() == pytest.approx(1.4, abs=0.02)


def test_reverse_direction_is_the_same_road_with_mirrored_bends():
    fwd, rev = make_track("hairpin"), make_track("hairpin-rev")
    assert rev.name == "hairpin-rev" and rev.reversed().name == "hairpin"
    assert rev.length == pytest.approx(fwd.length)
    np.testing.assert_allclose(np.sort(rev.curvature), np.sort(-fwd.curvature), atol=1e-9)
    # one point further along the reversed track is one point back on the original
    x, y, _ = rev.point_at(rev.spacing)
    np.testing.assert_allclose((x, y), fwd.points[-1], atol=1e-4)
    sim = RoverSim("oval-rev", image_size=(24, 32))
    for _ in range(60):
        sim.step(0.0, 0.5, 1 / 30)
    assert sim.progress_m > 0.5  # forward along the reversed direction


def test_off_track_follows_the_local_road_width():
    track = make_track("narrows")
    narrow, wide = int(np.argmin(track.widths)), int(np.argmax(track.widths))
    sim = RoverSim(track, image_size=(24, 32))
    for index, expected in ((narrow, True), (wide, False)):
        sim.reset(start_s=index * track.spacing, lateral_m=0.5)  # 0.5 m: beyond 0.35, within 0.7
        assert sim.off_track is expected
    # the rendered road is narrow where the track is
    renderer = Renderer(track, (24, 32))
    half = renderer._raster.half_m
    for index in (narrow, wide):
        px = renderer._raster.to_px(track.points[index : index + 1])[0].astype(int)
        assert half[px[1], px[0]] == pytest.approx(track.widths[index] / 2, abs=0.05)


def test_appearance_randomizes_exposure_and_blur_and_is_seeded():
    rng = np.random.default_rng(0)
    looks = [Appearance.sample(rng) for _ in range(40)]
    assert min(a.exposure_ev for a in looks) < -0.2 and max(a.exposure_ev for a in looks) > 0.2
    assert any(a.blur_px == 0 for a in looks) and any(a.blur_px > 0.5 for a in looks)
    heights = [a.camera.height_m for a in looks]
    assert max(heights) - min(heights) > 0.03
    frames = []
    for seed in (7, 7, 8):
        sim = RoverSim("chicane", image_size=(48, 64), seed=seed)
        frames.append(sim.render().astype(int))
    np.testing.assert_array_equal(frames[0], frames[1])
    assert np.abs(frames[0] - frames[2]).mean() > 5


def test_blur_and_exposure_act_on_the_frame():
    track = make_track("oval")
    renderer = Renderer(track, (96, 128))
    plain = Appearance()
    renderer.set_appearance(0, appearance=plain)
    base = renderer.render(0.0, -3.0, 0.0).astype(float)
    from dataclasses import replace

    renderer.set_appearance(0, appearance=replace(plain, exposure_ev=0.5))
    assert renderer.render(0.0, -3.0, 0.0).astype(float).mean() > base.mean() * 1.2
    renderer.set_appearance(0, appearance=replace(plain, blur_px=3.0))
    blurred = renderer.render(0.0, -3.0, 0.0).astype(float)
    assert np.abs(np.diff(blurred, axis=1)).mean() < 0.8 * np.abs(np.diff(base, axis=1)).mean()


def test_record_goes_round_robin_over_tracks_and_says_which(tmp_path):
    record_episodes(tmp_path, 4, track=["oval", "hairpin-rev"], image_size=(24, 32), seconds=0.2, seed=1)
    eps = load_episodes(tmp_path)
    assert [e.meta["track"] for e in eps] == ["oval", "hairpin-rev", "oval", "hairpin-rev"]
    assert len({e.meta["appearance_seed"] for e in eps}) == 4


def test_track_lists():
    assert parse_tracks("oval, winding-rev,oval") == ["oval", "winding-rev"]
    everything = parse_tracks("all")
    assert len(everything) == 2 * len(track_names()) and "peanut-rev" in everything
    with pytest.raises(ConfigError, match="unknown track 'ovl'.*oval-rev"):
        parse_tracks("oval,ovl")
