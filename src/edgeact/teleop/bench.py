"""What the drive page costs the control loop: the same drive without and with a page open.

Each phase runs `edgeact drive --camera sim --actuator sim --model BUNDLE` in ``auto`` mode
(the policy infers and drives) at ``rate_hz`` for ``duration_s``; the second phase has a
headless Chromium on the page, streaming video. Per phase: missed deadlines, jitter,
inference; with the page: the video latency the page measured (capture → drawn), frames
shown, and the CPU the streaming took (server thread + JPEG encoding), beside the
process's and the browser's. The machine's load average is reported too: on a shared
machine, read the two phases against each other.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edgeact.runtime.config import ProcessConfig, RuntimeConfig
from edgeact.runtime.telemetry import RunReport
from edgeact.teleop.session import DriveConfig, DriveSession


@dataclass
class Phase:
    label: str
    run: RunReport
    wall_s: float
    process_cpu_s: float
    load_before: float
    load_after: float
    streaming_cpu_s: float | None = None
    browser_cpu_s: float | None = None
    frames_shown: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class DriveBench:
    backend: str
    rate_hz: float
    duration_s: float
    video_fps: float
    cores: int
    phases: list[Phase]

    def format_table(self) -> str:
        def pct(v: float | None, wall: float) -> str:
            return "-" if v is None else f"{100 * v / wall:.1f}%"

        def ms(d: dict, key: str) -> str:
            return f"{d[key]:.2f}" if d.get("n") else "-"

        rows = [("", *(p.label for p in self.phases))]
        rows.append(("missed deadlines", *(str(p.run.missed_deadlines) for p in self.phases)))
        rows.append(("jitter p50 / p99 (ms)", *(f"{ms(p.run.jitter_ms, 'p50')} / {ms(p.run.jitter_ms, 'p99')}"
                                                for p in self.phases)))
        rows.append(("ticks", *(str(p.run.ticks) for p in self.phases)))
        rows.append(("inference p50 / p99 (ms)", *(f"{ms(p.run.stages_ms['inference'], 'p50')} / "
                                                   f"{ms(p.run.stages_ms['inference'], 'p99')}" for p in self.phases)))
        rows.append(("video frames shown", *(str(p.frames_shown) if p.label == "with page" else "-"
                                             for p in self.phases)))
        rows.append(("video latency p50 / p99 (ms)", *(f"{p.latency_ms['p50']:.0f} / {p.latency_ms['p99']:.0f}"
                                                       if p.latency_ms.get("n") else "-" for p in self.phases)))
        rows.append(("streaming CPU (of one core)", *(pct(p.streaming_cpu_s, p.wall_s) for p in self.phases)))
        rows.append(("edgeact process CPU", *(pct(p.process_cpu_s, p.wall_s) for p in self.phases)))
        rows.append(("browser CPU", *(pct(p.browser_cpu_s, p.wall_s) for p in self.phases)))
        rows.append(("load average before / after",
                     *(f"{p.load_before:.2f} / {p.load_after:.2f}" for p in self.phases)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [f"edgeact drive benchmark: {self.backend}, {self.rate_hz:g} Hz for {self.duration_s:g} s per phase, "
                 f"video cap {self.video_fps:g} fps, {self.cores} cores"]
        lines += ["  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                  for r in rows]
        return "\n".join(lines)


def bench_drive(backend: Any, rate_hz: float = 100.0, duration_s: float = 60.0,
                video_fps: float = DriveConfig.video_fps, page: bool = True,
                log: Callable[[str], None] = print) -> DriveBench:
    """Run the phases (without the page, then with it, unless ``page`` is False) on ``backend``."""
    phases = [_phase(backend, rate_hz, duration_s, video_fps, with_page=False, log=log)]
    if page:
        phases.append(_phase(backend, rate_hz, duration_s, video_fps, with_page=True, log=log))
    return DriveBench(backend.name, rate_hz, duration_s, video_fps, os.cpu_count() or 1, phases)


def _phase(backend: Any, rate_hz: float, duration_s: float, video_fps: float, with_page: bool,
           log: Callable[[str], None]) -> Phase:
    from edgeact.drive import Parts, open_parts
    from edgeact.teleop.headless import open_chromium, processes_cpu_seconds, renice

    label = "with page" if with_page else "without page"
    driver = profile = None
    if with_page:
        driver, profile = open_chromium()  # started before the run: its start-up is not the page's cost
    camera, actuator = open_parts(Parts(camera="sim", actuator="sim"), backend.spec.image_size)
    runtime = RuntimeConfig(rate_hz=rate_hz, duration_s=duration_s,
                            process=ProcessConfig(keyboard=False, handle_signals=False))
    cfg = DriveConfig(runtime=runtime, port=0, video_fps=video_fps)
    session = DriveSession(backend, camera, actuator, cfg, has_policy=True)
    session.pilot.set_mode("auto")
    log(f"{label}: {rate_hz:g} Hz for {duration_s:g} s ...")
    load_before = os.getloadavg()[0]
    cpu0, t0 = time.process_time(), time.monotonic()
    browser0 = processes_cpu_seconds(str(profile)) if profile else None
    session.start()
    frames = 0
    try:
        if driver is not None and profile is not None:
            driver.get(session.url)
            renice(str(profile))  # its renderer starts with the page
        while not session.wait(0.5):
            pass
        if driver is not None:
            frames = int(driver.execute_script("return window.edgeact ? window.edgeact.framesShown : 0"))
            driver.execute_script("window.edgeact && window.edgeact.flushLatency && window.edgeact.flushLatency()")
            time.sleep(0.3)  # the last latency report reaches the rover
        streaming = session.server.cpu_seconds() if session.server is not None else None
        browser = processes_cpu_seconds(str(profile)) - browser0 if profile and browser0 is not None else None
    finally:
        report = session.stop("benchmark done")
        if driver is not None:
            driver.quit()
        if profile is not None:
            shutil.rmtree(profile, ignore_errors=True)
    wall = time.monotonic() - t0
    return Phase(label, report.run, wall, time.process_time() - cpu0, load_before, os.getloadavg()[0],
                 streaming, browser, frames, report.video_latency_ms)
