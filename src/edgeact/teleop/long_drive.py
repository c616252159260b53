"""A long drive: does the drive stay healthy for a session of 20-60 minutes?

`edgeact bench-drive --model BUNDLE --minutes N` runs `edgeact drive --camera sim --actuator
sim` in ``auto`` mode (the policy infers and drives) for N minutes, with a headless Chromium
on the page over HTTPS (the phone's stand-in, at nice 19: on the rover it is not on the Pi)
and recording all the time, cut into episodes of ``episode_s``. Each minute it takes:

- memory: the drive process's RSS, the browser's PSS (all its processes, shared pages split);
- inference p50/p99, control jitter p99 (|period − nominal|), missed deadlines, faults
  (each one held the rover neutral: stale chunks, serial loss...);
- the video latency the page measured (capture → drawn) and the frames it reported;
- episodes written and the megabytes they take on disk (the recording rate);
- the load average, since a shared machine's neighbours move every figure.

The test rig's own records are trimmed every minute: the simulator's trajectory and the
simulated Arduino's log of every command it received grow with each step (~1.7 MB a minute
at 100 Hz, found with tracemalloc); a Pi has neither, so they are not the drive's memory.

Drift is the Theil–Sen slope (the median of the slopes between every pair of minutes: one
noisy minute cannot tilt it) over the minutes after the first (start-up: arenas, caches, the
browser), projected to an hour and held against :data:`DRIFT_LIMITS`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from edgeact.runtime.config import ProcessConfig, RuntimeConfig
from edgeact.teleop.session import DriveConfig, DriveSession

MINUTE_S = 60.0


@dataclass(frozen=True)
class DriftLimit:
    """The most a series may change over an hour of driving; ``relative``: a fraction of its first value."""

    per_hour: float
    relative: float = 0.0
    why: str = ""

    def limit(self, first: float) -> float:
        return max(self.per_hour, self.relative * abs(first))


DRIFT_LIMITS: dict[str, DriftLimit] = {
    # The telemetry keeps every tick in memory by design (~0.5 MB a minute at 100 Hz, docs/drive.md):
    # above 60 MB an hour is a leak, and two of them would eat a 2 GB Pi 5's headroom in a long session.
    "drive_rss_mb": DriftLimit(60.0, why="a leak beyond the telemetry's own growth"),
    # The page stands for a phone's tab: 120 MB more an hour and a phone's OS may kill the tab mid-drive.
    "browser_pss_mb": DriftLimit(120.0, why="a phone's tab growing towards being killed"),
    # A control loop losing its schedule as the session grows (work that grows with the run's length on
    # a thread the loop waits for): 2 ms an hour on the p99 of |period - nominal|.
    "jitter_p99_ms": DriftLimit(2.0, why="the control loop losing its schedule as the run grows"),
    # Slower inference eats the margin of the control loop: 10% an hour (at least 1 ms).
    "inference_p50_ms": DriftLimit(1.0, 0.10, why="inference slowing by 10% an hour"),
    # A backlog in the video path grows by whole frames (tens of ms) a minute; 30 ms an hour is
    # well under what a person driving notices (~100 ms) and above this machine's noise.
    "video_p50_ms": DriftLimit(30.0, why="a video backlog building up"),
}


@dataclass
class Minute:
    minute: int
    drive_rss_mb: float
    browser_pss_mb: float
    inference_p50_ms: float
    inference_p99_ms: float
    jitter_p99_ms: float
    missed: int
    faults: int
    ticks: int
    video_p50_ms: float
    video_p99_ms: float
    video_frames: int
    episodes: int
    recorded_mb: float
    load1: float

    def row(self) -> str:
        return (f"{self.minute:>4} {self.drive_rss_mb:>8.0f} {self.browser_pss_mb:>8.0f} "
                f"{self.inference_p50_ms:>6.1f} {self.inference_p99_ms:>6.1f} {self.jitter_p99_ms:>7.2f} "
                f"{self.missed:>6} {self.faults:>6} {self.video_p50_ms:>6.0f} {self.video_p99_ms:>6.0f} "
                f"{self.video_frames:>6} {self.episodes:>4} {self.recorded_mb:>7.1f} {self.load1:>6.2f}")


HEADER = (f"{'min':>4} {'drive':>8} {'browser':>8} {'inf':>6} {'inf':>6} {'jitter':>7} {'missed':>6} "
          f"{'faults':>6} {'video':>6} {'video':>6} {'frames':>6} {'eps':>4} {'rec':>7} {'load1':>6}\n"
          f"{'':>4} {'RSS MB':>8} {'PSS MB':>8} {'p50':>6} {'p99 ms':>6} {'p99 ms':>7} {'':>6} {'':>6} "
          f"{'p50':>6} {'p99 ms':>6} {'':>6} {'':>4} {'MB':>7} {'':>6}")


@dataclass
class Drift:
    series: str
    per_hour: float  # the Theil-Sen slope, projected to an hour
    limit: float  # DRIFT_LIMITS' limit for this series: growth above it is drift (a fall never is)
    first: float  # the series' value in the first minute counted
    flat: bool
    why: str


@dataclass
class LongDrive:
    backend: str
    rate_hz: float
    minutes_asked: float
    episode_s: float
    video_fps: float
    https: bool
    cores: int
    rows: list[Minute] = field(default_factory=list)
    drift: list[Drift] = field(default_factory=list)
    stopped: str = ""  # why it ended before the minutes asked, if it did
    recorded_mb_per_minute: float = float("nan")

    @property
    def verdict(self) -> str:
        if len(self.rows) < 3:
            return "too short for a verdict (drift needs 3 minutes: the first is start-up)"
        drifting = [d.series for d in self.drift if not d.flat]
        return f"DRIFT in {', '.join(drifting)}" if drifting else "flat: no drift beyond the limits"

    def format_table(self) -> str:
        lines = [f"edgeact long drive: {self.backend}, {self.rate_hz:g} Hz, the page over "
                 f"{'HTTPS' if self.https else 'HTTP'} at {self.video_fps:g} fps, recording in episodes of "
                 f"{self.episode_s:g} s, {len(self.rows)} of {self.minutes_asked:g} minutes, {self.cores} cores",
                 HEADER, *(r.row() for r in self.rows)]
        if self.stopped:
            lines.append(f"stopped early: {self.stopped}")
        lines.append(f"recording: {self.recorded_mb_per_minute:.1f} MB a minute on disk")
        if self.drift:
            lines.append("drift (Theil-Sen slope over minutes 2..N, per hour; limit):")
            lines += [f"  {d.series:<17} {d.per_hour:+9.2f} (limit +{d.limit:.2f}, from {d.first:.1f}) "
                      f"{'flat' if d.flat else 'DRIFT'}: {d.why}" for d in self.drift]
        lines.append(f"verdict: {self.verdict}")
        loads = [r.load1 for r in self.rows[1:]]
        if loads and max(loads) - min(loads) > 1.0:
            lines.append(f"  the load average moved between {min(loads):.1f} and {max(loads):.1f} over those minutes: "
                         "latency drift may be the machine's other jobs; rerun on a quiet machine")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {**asdict(self), "verdict": self.verdict}


def theil_sen(y: list[float]) -> float:
    """Median of the slopes between every pair of points of ``y`` (one per minute); nan under 2 points."""
    pairs = [(y[j] - y[i]) / (j - i) for i, j in combinations(range(len(y)), 2)
             if np.isfinite(y[i]) and np.isfinite(y[j])]
    return float(np.median(pairs)) if pairs else float("nan")


def drift(rows: list[Minute]) -> list[Drift]:
    """The slope of each series in :data:`DRIFT_LIMITS` over the minutes after the first."""
    counted = rows[1:]
    if len(counted) < 2:
        return []
    found = []
    for series, limit in DRIFT_LIMITS.items():
        values = [float(getattr(r, series)) for r in counted]
        per_hour = theil_sen(values) * 60
        bound = limit.limit(values[0])
        found.append(Drift(series, per_hour, bound, values[0], bool(per_hour <= bound), limit.why))
    return found


def long_drive(backend: Any, minutes: float, rate_hz: float = 100.0, episode_s: float = 30.0,
               video_fps: float = DriveConfig.video_fps, https: bool = True, record_dir: str | None = None,
               log: Callable[[str], None] = print, minute_s: float = MINUTE_S) -> LongDrive:
    """Drive ``backend`` in the simulator for ``minutes`` with the page open and recording; a row a minute.

    ``record_dir``: keep the episodes there (default: a temporary folder, removed at the end).
    ``minute_s``: how long a row lasts (a minute; the tests use seconds)."""
    from edgeact.drive import Parts, open_parts
    from edgeact.teleop.headless import open_chromium, renice
    from edgeact.teleop.web.certificate import ensure_certificate, local_names

    result = LongDrive(backend.name, rate_hz, minutes, episode_s, video_fps, https, os.cpu_count() or 1)
    scratch = Path(tempfile.mkdtemp(prefix="edgeact-long-drive-"))
    episodes = Path(record_dir) if record_dir else scratch / "episodes"
    cert = ensure_certificate(scratch / "tls", local_names("127.0.0.1")) if https else None
    driver, profile = open_chromium(trust_spki=cert.spki_sha256 if cert else None)
    camera, actuator = open_parts(Parts(camera="sim", actuator="sim"), backend.spec.image_size)
    runtime = RuntimeConfig(rate_hz=rate_hz, process=ProcessConfig(keyboard=False, handle_signals=False))
    cfg = DriveConfig(runtime=runtime, port=0, video_fps=video_fps, record_dir=str(episodes), https=https,
                      cert_dir=str(scratch / "tls"), on_record_error="keep-driving")
    session = DriveSession(backend, camera, actuator, cfg, has_policy=True)
    session.pilot.set_mode("auto")
    try:
        session.start()
        driver.get(session.url)
        renice(str(profile))  # its renderer starts with the page
        assert session.recorder is not None
        session.recorder.toggle()
        log(f"long drive: {minutes:g} minutes at {rate_hz:g} Hz, a row a minute\n{HEADER}")
        _drive_minutes(session, result, minutes, episode_s, minute_s, str(profile), log)
    except KeyboardInterrupt:
        result.stopped = "interrupted (Ctrl-C)"
    finally:
        report = session.stop("long drive done")
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
    if result.stopped == "the drive ended on its own" or not report.run.stop_kind.normal:
        result.stopped = report.run.stop_reason
    result.drift = drift(result.rows)
    recorded = [r.recorded_mb for r in result.rows[1:]] or [r.recorded_mb for r in result.rows]
    result.recorded_mb_per_minute = float(np.mean(recorded)) if recorded else float("nan")
    return result


class _Counters:
    """Where the previous minute ended, to take the next one's share of each running total."""

    def __init__(self, session: DriveSession) -> None:
        self.t = time.monotonic()
        self.missed = session.runtime.ratekeeper.missed
        self.latencies = session.latency_count
        self.events = len(session.runtime.telemetry.events)
        self.episodes = 0


def _drive_minutes(session: DriveSession, result: LongDrive, minutes: float, episode_s: float, minute_s: float,
                   browser: str, log: Callable[[str], None]) -> None:
    rec = session.recorder
    assert rec is not None
    start = time.monotonic()
    next_cut = start + episode_s
    last = _Counters(session)
    for m in range(1, int(minutes) + 1):
        end = start + m * minute_s
        while (now := time.monotonic()) < end:
            if session.wait(min(0.5, end - now)):
                result.stopped = "the drive ended on its own"  # the report says why
                return
            if time.monotonic() >= next_cut:
                rec.next_episode()
                next_cut += episode_s
        _trim_rig(session)
        row = _minute(session, m, last, browser)
        result.rows.append(row)
        log(row.row())


RIG_RECORDS_KEPT = 1000


def _trim_rig(session: DriveSession) -> None:
    """Keep the newest of the simulator's and the simulated Arduino's records (lists their threads append to;
    ``del`` of a slice is one step under the GIL)."""
    for records in (getattr(getattr(session.camera, "sim", None), "trajectory", None),
                    getattr(getattr(session.actuator, "sim", None), "commands", None)):
        if isinstance(records, list) and len(records) > RIG_RECORDS_KEPT:
            del records[:-RIG_RECORDS_KEPT]


def _minute(session: DriveSession, m: int, last: _Counters, browser: str) -> Minute:
    from edgeact.teleop.headless import own_rss_mb, processes_memory_mb

    rec = session.recorder
    assert rec is not None
    recent = session.runtime.telemetry.since(last.t)
    period = recent["period"][np.isfinite(recent["period"])]
    jitter = np.abs(period - 1.0 / session.runtime.config.rate_hz) * 1e3
    inference = recent["inference"] * 1e3
    new_latencies = session.latency_count - last.latencies
    latency = np.asarray(list(session.latency_ms)[-new_latencies:] if new_latencies else [], dtype=np.float64)
    saved = rec.saved[last.episodes:]
    events = session.runtime.telemetry.events
    faults = sum(e["type"] == "fault" for e in events[last.events:])
    row = Minute(
        minute=m, drive_rss_mb=own_rss_mb(), browser_pss_mb=processes_memory_mb(browser),
        inference_p50_ms=_pct(inference, 50), inference_p99_ms=_pct(inference, 99), jitter_p99_ms=_pct(jitter, 99),
        missed=session.runtime.ratekeeper.missed - last.missed, faults=faults, ticks=int(period.size),
        video_p50_ms=_pct(latency, 50), video_p99_ms=_pct(latency, 99), video_frames=int(latency.size),
        episodes=len(saved), recorded_mb=sum(_disk_bytes(p) for p in saved) / 1e6, load1=os.getloadavg()[0])
    last.t, last.missed = time.monotonic(), session.runtime.ratekeeper.missed
    last.latencies, last.episodes, last.events = session.latency_count, last.episodes + len(saved), len(events)
    return row


def _pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if values.size else float("nan")


def _disk_bytes(folder: Path) -> int:
    """The disk an episode takes (whole blocks, as a card fills)."""
    total = 0
    for dirpath, _, files in os.walk(folder):
        for f in files:
            try:
                total += os.stat(os.path.join(dirpath, f)).st_blocks * 512
            except OSError:
                continue
    return total


def save_plot(result: LongDrive, path: str | Path) -> Path:
    """Memory and latencies per minute, one figure (matplotlib, the torch extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = [r.minute for r in result.rows]
    fig, (mem, lat) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    mem.plot(m, [r.drive_rss_mb for r in result.rows], "o-", label="drive RSS")
    mem.plot(m, [r.browser_pss_mb for r in result.rows], "s-", label="browser PSS")
    mem.set_ylabel("MB")
    mem.legend()
    for series, style in (("inference_p50_ms", "o-"), ("inference_p99_ms", "o--"), ("video_p50_ms", "s-"),
                          ("jitter_p99_ms", "^-")):
        lat.plot(m, [getattr(r, series) for r in result.rows], style, label=series.removesuffix("_ms"))
    lat.set_ylabel("ms")
    load = lat.twinx()  # latency follows the machine's other jobs: show them
    load.plot(m, [r.load1 for r in result.rows], ":", color="grey", label="load average")
    load.set_ylabel("load average (1 min)", color="grey")
    lat.set_xlabel("minute")
    lat.set_xticks(m if len(m) <= 30 else m[::5])
    lat.legend()
    fig.suptitle(f"long drive, {result.backend} at {result.rate_hz:g} Hz: {result.verdict}", fontsize=10)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
