"""The backend ``edgeact drive`` runs without ``--model``: a person drives, so nothing infers.

The runtime still wants a backend (its spec sets the camera size and the state layout);
this one answers every frame at once with a neutral chunk, which nothing reads: the pilot
only allows ``user`` mode without a policy.
"""

from __future__ import annotations

import numpy as np

from edgeact.policy import PolicySpec


class NoPolicy:
    name = "none"

    def __init__(self, image_size: tuple[int, int] = (360, 640), fps: float = 30.0) -> None:
        h, w = image_size
        self.spec = PolicySpec(camera_names=("cam_front",), image_size=(int(h), int(w)), state_dim=2, action_dim=2,
                               chunk_size=1, fps=fps)

    def predict_chunk(self, image: np.ndarray, state: np.ndarray) -> np.ndarray:
        return np.zeros((1, 2), dtype=np.float32)

    def close(self) -> None:
        pass
