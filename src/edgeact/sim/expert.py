"""The expert driver: pure pursuit on the centre line, a speed controller, and noise injection.

Why noise, and why the label is not what drove the rover
--------------------------------------------------------
A policy trained only on perfect driving never sees itself off-centre or mis-aligned, so its
first small mistake takes it somewhere the data never showed, and errors compound (the
covariate shift that DAgger addresses). So while recording, the expert's commands are now
and then perturbed for a few steps (a steering offset held for a fraction of a second):
the rover drifts off the centre line and the camera sees it. The *label* written to the
episode at each step is the expert's clean corrective command for the state the rover is
actually in, never the perturbed command that was executed. The data thus holds many
recoveries, each labelled with what a good driver does there, and none of the
perturbations themselves (as in DART, Laskey et al. 2017, a cheap offline form of DAgger).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from edgeact.sim.rover import Rover, RoverParams
from edgeact.sim.track import Track


@dataclass(frozen=True)
class ExpertNoise:
    """Perturbations applied to the executed command (not to the recorded label)."""

    events_per_second: float = 0.35  # mean rate of steering perturbations
    duration_s: tuple[float, float] = (0.15, 0.45)
    steering_offset: tuple[float, float] = (0.2, 0.55)  # |offset| added to steering, random sign
    steering_jitter: float = 0.03  # std of per-step noise on executed steering
    throttle_jitter: float = 0.03  # std of per-step noise on executed throttle

    @classmethod
    def off(cls) -> ExpertNoise:
        return cls(events_per_second=0.0, steering_jitter=0.0, throttle_jitter=0.0)


@dataclass(frozen=True)
class ExpertStep:
    label: np.ndarray  # (2,) float32 [steering, throttle]: the expert's clean command, to record
    command: np.ndarray  # (2,) float32: what drives the rover (label + perturbation)
    perturbed: bool


class ExpertDriver:
    """Pure pursuit with a speed-dependent lookahead and a feed-forward + P speed controller."""

    def __init__(
        self,
        track: Track,
        target_speed: float = 1.2,
        noise: ExpertNoise | None = None,
        seed: int = 0,
        rover: RoverParams | None = None,
        lateral_accel: float = 1.5,
    ) -> None:
        self.track = track
        self.target_speed = float(target_speed)
        self.noise = noise if noise is not None else ExpertNoise.off()
        self.params = rover or RoverParams()
        self.lateral_accel = lateral_accel
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        self._perturb_left = 0.0
        self._perturb_offset = 0.0

    # ------------------------------------------------------------------ clean control
    def control(self, pose: tuple[float, float, float], speed: float, s: float) -> tuple[float, float]:
        """(steering, throttle) in [-1, 1] for a rover at ``pose`` with centre-line arc length ``s``."""
        x, y, yaw = pose
        p = self.params
        wheelbase = p.wheelbase_m
        # pure pursuit from the rear axle
        rx, ry = x - 0.5 * wheelbase * math.cos(yaw), y - 0.5 * wheelbase * math.sin(yaw)
        lookahead = min(max(0.45 + 0.45 * abs(speed), 0.6), 1.6)
        tx, ty, _ = self.track.point_at(s + lookahead)
        dx, dy = tx - rx, ty - ry
        dist = max(math.hypot(dx, dy), 1e-3)
        alpha = math.atan2(dy, dx) - yaw
        delta = math.atan2(2.0 * wheelbase * math.sin(alpha), dist)
        steering = delta / math.radians(p.max_steer_deg)
        # speed: slow for the tightest bend in the next ~1.5 s of driving
        ahead = np.arange(0.0, max(1.5, 1.5 * self.target_speed), 0.25) + s
        kappa = max(abs(self.track.curvature_at(a)) for a in ahead)
        v_target = min(self.target_speed, math.sqrt(self.lateral_accel / max(kappa, 1e-6)))
        throttle = (p.drag * v_target + p.rolling) / p.max_accel + 0.6 * (v_target - speed)
        return float(np.clip(steering, -1.0, 1.0)), float(np.clip(throttle, -1.0, 1.0))

    # ------------------------------------------------------------------ with noise
    def act(self, sim, dt: float) -> ExpertStep:
        """The label (clean command) and the executed command for the rover in ``sim``."""
        steer, thr = self.control(sim.pose, sim.speed, sim.progress_s)
        label = np.array([steer, thr], dtype=np.float32)
        n = self.noise
        cmd_s, cmd_t = steer, thr
        idle = self._perturb_left <= 0 and n.events_per_second > 0
        if idle and self.rng.random() < 1.0 - math.exp(-n.events_per_second * dt):  # draws only when idle
            self._perturb_left = self.rng.uniform(*n.duration_s)
            self._perturb_offset = self.rng.uniform(*n.steering_offset) * self.rng.choice([-1.0, 1.0])
        perturbed = self._perturb_left > 0
        if perturbed:
            cmd_s += self._perturb_offset
            self._perturb_left -= dt
        if n.steering_jitter:
            cmd_s += self.rng.normal(0.0, n.steering_jitter)
        if n.throttle_jitter:
            cmd_t += self.rng.normal(0.0, n.throttle_jitter)
        command = np.clip(np.array([cmd_s, cmd_t], dtype=np.float32), -1.0, 1.0)
        return ExpertStep(label=label, command=command, perturbed=perturbed)


class ExpertBackend:
    """The expert as a :class:`~edgeact.policy.Backend` that drives from *privileged*
    state (it ignores the image): a reference driver for ``evaluate`` and its tests.

    It must be bound to the sim it drives (``backend.sim = sim``; ``evaluate`` does this for
    any backend with a ``sim`` attribute that is None). Its chunk is the expert's own plan:
    a rollout of the clean expert on a copy of the rover, ``chunk_size`` steps at ``fps``.
    """

    name = "expert"

    def __init__(
        self, track: Track, image_size=(96, 128), chunk_size: int = 10, fps: float = 30.0, **expert_kw
    ) -> None:
        from edgeact.policy import PolicySpec

        self.spec = PolicySpec(
            camera_names=("cam_front",),
            image_size=(int(image_size[0]), int(image_size[1])),
            state_dim=2,
            action_dim=2,
            chunk_size=int(chunk_size),
            fps=float(fps),
        )
        self.expert = ExpertDriver(track, **expert_kw)
        self.sim = None

    def predict_chunk(self, image, state) -> np.ndarray:
        self.spec.check_inputs(image, state)
        if self.sim is None:
            raise RuntimeError("ExpertBackend is not bound to a sim: set backend.sim = sim")
        track, dt = self.expert.track, 1.0 / self.spec.fps
        rover = Rover(self.expert.params, replace(self.sim.rover.state))
        proj = self.sim.projection
        chunk = np.empty((self.spec.chunk_size, 2), dtype=np.float32)
        for k in range(self.spec.chunk_size):
            st = rover.state
            chunk[k] = self.expert.control((st.x, st.y, st.yaw), st.speed, proj.s)
            rover.step(float(chunk[k, 0]), float(chunk[k, 1]), dt)
            proj = track.project(rover.state.x, rover.state.y, hint=proj.index)
        return chunk

    def close(self) -> None:
        pass
