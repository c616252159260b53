"""The rover simulator: track, kinematics, camera renderer, expert driver, recording, evaluation.

::

    from edgeact.sim import RoverSim, evaluate, record_episodes
    sim = RoverSim(track="oval", image_size=(360, 640), seed=0)
    sim.step(0.1, 0.4, 1 / 30); frame = sim.render()
"""

from __future__ import annotations

from edgeact.sim.evaluate import EvalResult, evaluate
from edgeact.sim.expert import ExpertBackend, ExpertDriver, ExpertNoise
from edgeact.sim.record import record_episodes
from edgeact.sim.track import Track, make_track, track_names
from edgeact.sim.world import RoverSim

__all__ = [
    "EvalResult",
    "ExpertBackend",
    "ExpertDriver",
    "ExpertNoise",
    "RoverSim",
    "Track",
    "evaluate",
    "make_track",
    "record_episodes",
    "track_names",
]
