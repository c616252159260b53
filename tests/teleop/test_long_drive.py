"""The long-drive benchmark: its drift verdict, and a short drive through every part of it."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from edgeact.teleop.long_drive import DRIFT_LIMITS, Minute, drift, theil_sen


def minutes(**series) -> list[Minute]:
    n = len(next(iter(series.values())))
    base = dict(drive_rss_mb=300.0, browser_pss_mb=400.0, inference_p50_ms=20.0, inference_p99_ms=30.0,
                jitter_p99_ms=0.3, missed=0, faults=0, ticks=6000, video_p50_ms=30.0, video_p99_ms=60.0,
                video_frames=900, episodes=2, recorded_mb=40.0, load1=1.0)
    return [Minute(minute=i + 1, **{**base, **{k: v[i] for k, v in series.items()}}) for i in range(n)]


def test_theil_sen_ignores_one_wild_minute():
    y = [10.0 + 0.5 * i for i in range(10)]
    assert theil_sen(y) == pytest.approx(0.5)
    y[4] = 500.0  # one minute when the machine's neighbours ran something
    assert theil_sen(y) == pytest.approx(0.5, abs=0.1)
    assert np.isnan(theil_sen([1.0]))


def test_a_leak_is_drift_and_noise_is_not():
    rng = np.random.default_rng(0)
    noisy = list(30 + rng.normal(0, 8, 30))  # video latency on a shared machine: noisy, flat
    leak = [300 + 2.0 * i for i in range(30)]  # 2 MB a minute: 120 MB an hour, above the 60 MB limit
    found = {d.series: d for d in drift(minutes(video_p50_ms=noisy, drive_rss_mb=leak))}
    assert set(found) == set(DRIFT_LIMITS)
    assert not found["drive_rss_mb"].flat and found["drive_rss_mb"].per_hour == pytest.approx(120.0, rel=0.01)
    assert found["video_p50_ms"].flat and found["inference_p50_ms"].flat
    faster = [30.0 - 0.5 * i for i in range(10)]  # falling latency or memory is no drift
    assert {d.series: d.flat for d in drift(minutes(inference_p50_ms=faster))}["inference_p50_ms"]
    start_up = [900.0] + [300.0] * 5  # the first minute is start-up: it does not count
    assert all(d.flat for d in drift(minutes(drive_rss_mb=start_up)))
    assert drift(minutes(drive_rss_mb=[1.0, 2.0])) == []  # two minutes: no verdict


@pytest.mark.slow
def test_a_short_long_drive_fills_every_column(tmp_path):
    from edgeact.errors import ConfigError
    from edgeact.runtime.fake import DEFAULT_SPEC, FakePolicy
    from edgeact.teleop.headless import find_chromium
    from edgeact.teleop.long_drive import long_drive, save_plot

    try:
        find_chromium()
    except ConfigError as err:
        pytest.skip(str(err))
    backend = FakePolicy(dataclasses.replace(DEFAULT_SPEC, image_size=(90, 160)), latency_s=0.02, busy=0.3)
    lines = []
    result = long_drive(backend, minutes=3, rate_hz=50, episode_s=2.0, record_dir=str(tmp_path / "eps"),
                        log=lines.append, minute_s=4.0)
    print("\n" + result.format_table())
    assert [r.minute for r in result.rows] == [1, 2, 3] and not result.stopped
    assert all(r.ticks > 50 and r.drive_rss_mb > 50 and r.browser_pss_mb > 20 for r in result.rows)
    assert all(np.isfinite(r.inference_p50_ms) for r in result.rows)
    assert sum(r.episodes for r in result.rows) >= 3 and result.recorded_mb_per_minute > 0
    assert sum(r.video_frames for r in result.rows) > 0  # the page over HTTPS drew frames and said how late
    assert len(result.drift) == len(DRIFT_LIMITS) and result.verdict
    assert (tmp_path / "eps" / "episode_000" / "data.csv").is_file()  # kept where asked
    json.dumps(result.to_json())
    assert save_plot(result, tmp_path / "long.png").stat().st_size > 10_000
