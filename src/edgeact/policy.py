"""What a policy takes and gives (PolicySpec) and the one interface every inference backend
implements (Backend). Neutral: the bundle, the backends, the exporter, the runtime and the
simulator all speak it without importing each other."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from edgeact.errors import InputError

# One frame, or {camera name: frame} for several cameras.
Frames = np.ndarray | Mapping[str, np.ndarray]


@dataclass(frozen=True)
class PolicySpec:
    """What a policy takes and gives, independent of the backend that runs it."""

    camera_names: tuple[str, ...]  # e.g. ("cam_front",), order of the model's image inputs
    image_size: tuple[int, int]  # (H, W) every camera frame must have
    state_dim: int
    action_dim: int
    chunk_size: int
    fps: float = 30.0  # control steps per second the policy was trained at
    action_names: tuple[str, ...] = ("steering", "throttle")
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def check_inputs(self, image: Frames, state: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """Validate one observation; return frames in model order and a float32 state.

        Raises InputError naming the wrong shape or dtype and what is expected.
        """
        frames = self._frames_in_order(image)
        h, w = self.image_size
        for name, frame in zip(self.camera_names, frames):
            if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
                got = getattr(frame, "dtype", type(frame).__name__)
                raise InputError(f"camera {name!r}: frame must be a uint8 numpy array (HxWx3 RGB), got {got}")
            if frame.shape != (h, w, 3):
                raise InputError(
                    f"camera {name!r}: frame shape {frame.shape} does not match the model's input "
                    f"{(h, w, 3)}; resize it (edgeact.frames.fit_frame) before predict_chunk"
                )
        state = np.asarray(state, dtype=np.float32).reshape(-1)
        if state.shape != (self.state_dim,):
            raise InputError(f"state has {state.size} values; the model expects {self.state_dim}")
        if not np.all(np.isfinite(state)):
            raise InputError(f"state contains NaN or inf: {state}")
        return frames, state

    def _frames_in_order(self, image: Frames) -> list[np.ndarray]:
        if isinstance(image, Mapping):
            missing = [c for c in self.camera_names if c not in image]
            if missing:
                raise InputError(f"missing frames for cameras {missing}; the model takes {list(self.camera_names)}")
            return [image[c] for c in self.camera_names]
        if len(self.camera_names) != 1:
            raise InputError(
                f"the model takes {len(self.camera_names)} cameras {list(self.camera_names)}: "
                "pass a dict {camera name: frame}"
            )
        return [image]


@runtime_checkable
class Backend(Protocol):
    """Runs a policy: one observation in, one action chunk out.

    ``predict_chunk(image, state)``: image is an HxWx3 uint8 RGB frame at ``spec.image_size``
    (or a dict of them, one per camera); state is (state_dim,) float32 in real units.
    Returns (chunk_size, action_dim) float32 in real units (unnormalized).
    """

    name: str
    spec: PolicySpec

    def predict_chunk(self, image: Frames, state: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...
