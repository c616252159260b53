"""Record expert-driven episodes in the simulator, in edgeact's episode format.

Each episode starts at a random point of the track (a little off-centre and mis-aligned,
at a random speed), with its own appearance seed (colours, lighting, line style, camera
mount) and a target speed within ±15 % of the nominal one. The expert drives with noise
injection and the episode records its clean corrective commands (see
:mod:`edgeact.sim.expert`). Episodes are appended after any already in ``out``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeact.data.episodes import EpisodeWriter, episode_name, next_episode_index
from edgeact.errors import ConfigError, DataError
from edgeact.sim.expert import ExpertDriver, ExpertNoise
from edgeact.sim.world import RoverSim


@dataclass(frozen=True)
class RecordedEpisode:
    path: Path
    frames: int
    laps: float
    off_track_events: int
    mean_cross_track_m: float
    seconds_wall: float


def _check_existing(out: Path, fps: float, image_size: tuple[int, int]) -> None:
    if not out.is_dir():
        return
    for p in sorted(out.glob("episode_*/meta.json"))[:1]:
        try:
            meta = json.loads(p.read_text())
        except ValueError:
            return
        if list(meta.get("image_size", [])) != list(image_size) or float(meta.get("fps", fps)) != float(fps):
            raise DataError(
                f"{out} already holds episodes at {meta.get('image_size')} and {meta.get('fps')} fps; "
                f"new ones would be {list(image_size)} at {fps:g} fps. Record into another folder, or use the same "
                "--size and --fps"
            )


STATE_NAMES = ("steering", "throttle")  # written as state_steering, state_throttle


def record_episodes(
    out: str | os.PathLike,
    episodes: int = 10,
    *,
    track: str = "oval",
    fps: float = 30.0,
    image_size: tuple[int, int] = (360, 640),
    seconds: float = 20.0,
    seed: int = 0,
    target_speed: float = 1.2,
    noise: ExpertNoise | None = None,
    randomize: bool = True,
    jpeg_quality: int = 90,
    progress: Callable[[str], None] | None = None,
) -> list[RecordedEpisode]:
    """Record ``episodes`` episodes of ``seconds`` each into ``out``; returns what was written."""
    if episodes < 1:
        raise ConfigError(f"--episodes must be at least 1, got {episodes}")
    if not (fps > 0) or not (seconds > 0):
        raise ConfigError(f"--fps and --seconds must be positive (got fps={fps}, seconds={seconds})")
    out = Path(out)
    image_size = (int(image_size[0]), int(image_size[1]))
    _check_existing(out, fps, image_size)
    noise = ExpertNoise() if noise is None else noise
    sim = RoverSim(track, image_size=image_size, seed=seed, randomize=randomize)
    dt = 1.0 / fps
    steps = max(1, int(round(seconds * fps)))
    first = next_episode_index(out)
    results = []
    for i in range(episodes):
        t0 = time.perf_counter()
        rng = np.random.default_rng([int(seed), i])
        app_seed = int(rng.integers(2**31))
        speed = target_speed * float(rng.uniform(0.85, 1.15))
        sim.reset(
            seed=app_seed,
            start_s=float(rng.uniform(0, sim.track.length)),
            lateral_m=float(rng.uniform(-0.2, 0.2)),
            heading_offset_rad=float(rng.uniform(-0.15, 0.15)),
            speed=float(rng.uniform(0.0, speed)),
        )
        expert = ExpertDriver(sim.track, target_speed=speed, noise=noise, seed=int(rng.integers(2**31)))
        path = out / episode_name(first + i)
        meta = {
            "source": "edgeact-sim",
            "track": sim.track.name,
            "seed": int(seed),
            "episode_seed": [int(seed), i],
            "appearance_seed": app_seed,
            "randomize": bool(randomize),
            "target_speed": round(speed, 4),
            "camera_key": "observation.images.cam_front",
        }
        abs_cte = 0.0
        frame = np.empty((*image_size, 3), np.uint8)
        # The state is the command the rover actually executed last step (perturbation
        # included), not the expert's label: otherwise "copy the previous label" predicts the
        # data almost perfectly and the policy learns to ignore the camera (copycat problem).
        executed = np.zeros(2)
        with EpisodeWriter(path, fps, state_names=STATE_NAMES, jpeg_quality=jpeg_quality, meta=meta) as writer:
            for k in range(steps):
                sim.render(out=frame)
                act = expert.act(sim, dt)
                writer.add(frame, act.label, timestamp=k * dt, state=executed)
                executed = np.clip(np.asarray(act.command, dtype=np.float64), -1.0, 1.0)
                sim.step(float(executed[0]), float(executed[1]), dt)
                abs_cte += abs(sim.cross_track_m)
            writer.meta.update(
                laps=round(sim.laps, 4),
                off_track_events=int(sim.off_track_events),
                mean_cross_track_m=round(abs_cte / steps, 4),
            )
        rec = RecordedEpisode(
            path=path,
            frames=steps,
            laps=sim.laps,
            off_track_events=sim.off_track_events,
            mean_cross_track_m=abs_cte / steps,
            seconds_wall=time.perf_counter() - t0,
        )
        results.append(rec)
        if progress:
            progress(
                f"[{i + 1}/{episodes}] {path}: {steps} frames, {rec.laps:.2f} laps, "
                f"mean |cross-track| {rec.mean_cross_track_m:.3f} m, off-track {rec.off_track_events} "
                f"({rec.seconds_wall:.1f} s)"
            )
    return results
