"""Closed-loop evaluation of any :class:`~edgeact.policy.Backend` in the simulator.

The policy drives at its own fps in *simulated* time (so a slow backend is judged on its
driving, not on this machine's speed; its latency is reported separately). Every
``replan_every`` steps it gets the rendered frame (resized to ``backend.spec.image_size``
when the sim renders at another size) and the state, and returns a chunk; the steps until
the next replan execute ``chunk[0]``, ``chunk[1]``, …. The state follows the data
convention: the command sent at the previous step (zeros at the start).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeact.errors import ConfigError
from edgeact.fileio import atomic_save, atomic_write_text
from edgeact.frames import fit_frame
from edgeact.sim.world import RoverSim


@dataclass
class EvalResult:
    laps: float  # laps completed along the track direction (fractional)
    mean_cross_track_m: float  # mean |cross-track error| over all steps
    max_cross_track_m: float
    off_track_events: int  # times the rover's centre left the road
    steps: int
    seconds: float  # simulated seconds driven
    achieved_rate_hz: float  # sim steps per wall-clock second (render + inference + physics)
    latency_p50_ms: float  # predict_chunk wall time
    latency_p99_ms: float
    inference_calls: int
    mean_speed_mps: float
    track: str
    backend: str
    replan_every: int
    fps: float
    off_track_fraction: float = 0.0
    plot: str | None = None
    trajectory: list[tuple[float, float, float]] = field(default_factory=list, repr=False)
    off_track_points: list[tuple[float, float]] = field(default_factory=list, repr=False)

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly dict (no trajectory): laps, mean_cross_track_m, max_cross_track_m,
        off_track_events, and the rest."""
        d = asdict(self)
        d.pop("trajectory")
        d.pop("off_track_points")
        for k, v in d.items():
            if isinstance(v, float):
                d[k] = round(v, 6)
        return d

    def summary(self) -> str:
        return (
            f"{self.track}: {self.laps:.2f} laps in {self.seconds:.0f} s, mean |cross-track| "
            f"{self.mean_cross_track_m:.3f} m (max {self.max_cross_track_m:.3f}), off-track events "
            f"{self.off_track_events}, inference p50 {self.latency_p50_ms:.2f} ms / p99 "
            f"{self.latency_p99_ms:.2f} ms, {self.achieved_rate_hz:.0f} steps/s"
        )


def evaluate(
    backend,
    track: str = "oval",
    seconds: float = 60.0,
    seed: int = 0,
    replan_every: int = 1,
    *,
    render_size: tuple[int, int] | None = None,
    randomize: bool = True,
    start_s: float = 0.0,
    stop_after_off_track_s: float | None = None,
    plot: str | os.PathLike | None = None,
    json_path: str | os.PathLike | None = None,
    progress: Callable[[str], None] | None = None,
) -> EvalResult:
    """Drive ``backend`` around ``track`` for ``seconds`` of simulated time.

    ``render_size``: camera resolution (default: the policy's input size, so no resize).
    ``seed``: appearance seed of the world (use one never used in training).
    ``stop_after_off_track_s``: end early when the rover stays off the road this long.
    ``plot``: save a top-down PNG of the path; ``json_path``: write ``to_json()`` there.
    """
    spec = backend.spec
    if len(spec.camera_names) != 1:
        raise ConfigError(f"the simulator has one camera; this policy takes {list(spec.camera_names)}")
    if spec.action_dim < 2:
        raise ConfigError(f"the rover needs [steering, throttle]; the policy outputs {spec.action_dim} values")
    if spec.state_dim not in (0, 2):
        raise ConfigError(
            f"the simulator feeds a 2-value state (previous steering, throttle); the policy expects {spec.state_dim}"
        )
    replan_every = int(replan_every)
    if not 1 <= replan_every <= spec.chunk_size:
        raise ConfigError(f"--replan-every must be between 1 and the chunk size {spec.chunk_size}, got {replan_every}")
    if not seconds > 0:
        raise ConfigError(f"--seconds must be positive, got {seconds}")
    fps = float(spec.fps) if spec.fps and spec.fps > 0 else 30.0
    size = tuple(render_size) if render_size else tuple(spec.image_size)
    sim = RoverSim(track, image_size=size, seed=seed, randomize=randomize)
    sim.reset(start_s=start_s)
    if hasattr(backend, "sim") and backend.sim is None:
        backend.sim = sim  # privileged reference drivers (ExpertBackend)
        bound = True
    else:
        bound = False
    dt = 1.0 / fps
    steps = int(round(seconds * fps))
    h, w = spec.image_size
    state = np.zeros(spec.state_dim, np.float32)
    frame = np.empty((*size, 3), np.uint8)
    latencies: list[float] = []
    chunk = None
    k_in_chunk = 0
    abs_cte_sum = 0.0
    max_cte = 0.0
    speed_sum = 0.0
    off_steps = 0
    off_run = 0.0
    off_points: list[tuple[float, float]] = []
    done = 0
    t_start = time.perf_counter()
    try:
        for k in range(steps):
            if k % replan_every == 0:
                sim.render(out=frame)
                img = fit_frame(frame, (h, w))
                t0 = time.perf_counter()
                chunk = np.asarray(backend.predict_chunk(img, state))
                latencies.append(time.perf_counter() - t0)
                if chunk.ndim != 2 or chunk.shape[0] < replan_every or chunk.shape[1] < 2:
                    raise ConfigError(f"predict_chunk returned shape {chunk.shape}; expected ({spec.chunk_size}, 2+)")
                k_in_chunk = 0
            action = chunk[k_in_chunk]
            k_in_chunk += 1
            steer = float(np.clip(np.nan_to_num(action[0]), -1.0, 1.0))
            thr = float(np.clip(np.nan_to_num(action[1]), -1.0, 1.0))
            sim.step(steer, thr, dt)
            if spec.state_dim == 2:
                state = np.array([steer, thr], np.float32)
            done += 1
            cte = abs(sim.cross_track_m)
            abs_cte_sum += cte
            max_cte = max(max_cte, cte)
            speed_sum += sim.speed
            if sim.off_track:
                off_steps += 1
                off_run += dt
                x, y, _ = sim.pose
                off_points.append((x, y))
                if stop_after_off_track_s is not None and off_run >= stop_after_off_track_s:
                    break
            else:
                off_run = 0.0
            if progress and (k + 1) % int(10 * fps) == 0:
                progress(f"t={sim.time:.0f}s laps={sim.laps:.2f} off-track events={sim.off_track_events}")
    finally:
        if bound:
            backend.sim = None
    wall = time.perf_counter() - t_start
    lat_ms = np.array(latencies) * 1000.0 if latencies else np.zeros(1)
    result = EvalResult(
        laps=float(sim.laps),
        mean_cross_track_m=abs_cte_sum / max(done, 1),
        max_cross_track_m=max_cte,
        off_track_events=int(sim.off_track_events),
        steps=done,
        seconds=done * dt,
        achieved_rate_hz=done / wall if wall > 0 else math.inf,
        latency_p50_ms=float(np.percentile(lat_ms, 50)),
        latency_p99_ms=float(np.percentile(lat_ms, 99)),
        inference_calls=len(latencies),
        mean_speed_mps=speed_sum / max(done, 1),
        track=sim.track.name,
        backend=str(getattr(backend, "name", type(backend).__name__)),
        replan_every=replan_every,
        fps=fps,
        off_track_fraction=off_steps / max(done, 1),
        trajectory=list(sim.trajectory),
        off_track_points=off_points,
    )
    if plot:
        result.plot = str(plot_trajectory(sim.track, result, plot))
    if json_path:
        atomic_write_text(Path(json_path), json.dumps(result.to_json(), indent=2) + "\n")
    return result


def plot_trajectory(track, result: EvalResult, path: str | os.PathLike) -> Path:
    """Top-down PNG: the road, the centre line, the path coloured by time, off-track points in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    left, right = track.edges()
    fig, ax = plt.subplots(figsize=(7, 6), constrained_layout=True)
    def area(poly: np.ndarray) -> float:
        x, y = poly[:, 0], poly[:, 1]
        return abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) / 2

    outer, inner = (left, right) if area(left) > area(right) else (right, left)
    ax.fill(outer[:, 0], outer[:, 1], color="0.78", zorder=0, label="road")
    ax.fill(inner[:, 0], inner[:, 1], color="white", zorder=1)
    for edge in (left, right):
        ax.plot(np.r_[edge[:, 0], edge[0, 0]], np.r_[edge[:, 1], edge[0, 1]], color="0.3", lw=1, zorder=2)
    c = track.points
    ax.plot(np.r_[c[:, 0], c[0, 0]], np.r_[c[:, 1], c[0, 1]], "--", color="0.5", lw=0.8, zorder=2)
    traj = np.array(result.trajectory)
    if len(traj) > 1:
        pts = traj[:, 1:3]
        segs = np.stack([pts[:-1], pts[1:]], axis=1)
        lc = LineCollection(segs, cmap="viridis", linewidths=1.8, zorder=3)
        lc.set_array(traj[1:, 0])
        ax.add_collection(lc)
        fig.colorbar(lc, ax=ax, label="time (s)", shrink=0.8)
        ax.plot(*pts[0], "o", color="tab:green", zorder=4, label="start")
    if result.off_track_points:
        off = np.array(result.off_track_points)
        ax.plot(off[:, 0], off[:, 1], "x", color="tab:red", ms=4, zorder=5, label="off track")
    ax.set_aspect("equal")
    ax.set_title(
        f"{result.backend} on {result.track}: {result.laps:.2f} laps, mean |xte| {result.mean_cross_track_m:.3f} m, "
        f"off-track {result.off_track_events}",
        fontsize=9,
    )
    ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    path = Path(path)
    atomic_save(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
    return path
