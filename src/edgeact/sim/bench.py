"""How fast the simulator renders and steps, on one core (OpenCV threads set to 1 while timing)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from edgeact.sim.world import RoverSim


@dataclass(frozen=True)
class BenchRow:
    track: str
    image_size: tuple[int, int]
    render_fps: float  # frames per second, render only
    step_hz: float  # physics + track projection steps per second
    loop_hz: float  # render + step, as when recording
    texture_build_s: float  # one appearance (texture + camera) build


def bench(
    sizes: list[tuple[int, int]] | None = None,
    track: str = "oval",
    seconds: float = 1.0,
    threads: int = 1,
) -> list[BenchRow]:
    """Time rendering and stepping for each (H, W) in ``sizes`` for about ``seconds`` each."""
    sizes = sizes or [(360, 640), (96, 128)]
    old_threads = cv2.getNumThreads()
    cv2.setNumThreads(threads)
    rows = []
    try:
        for size in sizes:
            sim = RoverSim(track, image_size=size, seed=1)
            t0 = time.perf_counter()
            sim.render()
            build = time.perf_counter() - t0
            frame = np.empty((*size, 3), np.uint8)
            rows.append(
                BenchRow(
                    track=track,
                    image_size=tuple(size),
                    render_fps=_rate(lambda s=sim, f=frame: s.render(out=f), sim, seconds),
                    step_hz=_rate(None, sim, seconds),
                    loop_hz=_rate(lambda s=sim, f=frame: s.render(out=f), sim, seconds, step=True),
                    texture_build_s=build,
                )
            )
    finally:
        cv2.setNumThreads(old_threads)
    return rows


def _rate(fn, sim: RoverSim, seconds: float, step: bool = False) -> float:
    """Calls per second of fn (and/or a sim step), driving slowly around the track."""
    sim.reset(speed=1.0)
    n, t0 = 0, time.perf_counter()
    while True:
        for _ in range(20):
            if fn is not None:
                fn()
            if fn is None or step:
                sim.step(0.1, 0.35, 1 / 30)
        n += 20
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return n / elapsed


def format_table(rows: list[BenchRow]) -> str:
    lines = [f"{'track':<9}{'size (HxW)':>12}{'render fps':>12}{'step/s':>10}{'render+step/s':>15}{'build s':>9}"]
    for r in rows:
        h, w = r.image_size
        lines.append(
            f"{r.track:<9}{f'{h}x{w}':>12}{r.render_fps:>12.0f}{r.step_hz:>10.0f}{r.loop_hz:>15.0f}{r.texture_build_s:>9.2f}"
        )
    return "\n".join(lines)
