"""edgeact: an ACT driving policy from training to a Raspberry Pi 5 rover, and driving it.

Library entry points::

    policy = edgeact.load_policy("checkpoints/run1", backend="onnx-int8")
    chunk = policy.predict_chunk(frame_rgb_uint8, state)   # (chunk_size, action_dim) float32
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeact.version import __version__

if TYPE_CHECKING:
    from edgeact.policy import Backend


def load_policy(path: str, backend: str = "auto", **options) -> Backend:
    """Load a checkpoint or bundle and return a ready :class:`~edgeact.policy.Backend`.

    ``path``: a LeRobot pretrained directory, an edgeact checkpoint or export bundle, or a
    ``.pth``/``.pt`` state-dict file. ``backend``: "torch", "onnx", "onnx-int8", "torch-int8",
    "hailo-split", "hailo" (see ``edgeact.backends.registry.BACKENDS``), or "auto": a bundle's
    compiled HEF when a Hailo device is present, else its int8 model when it has one, else its
    fp32 ONNX model; a checkpoint runs on "torch".
    """
    from edgeact.backends.registry import load_backend

    return load_backend(path, backend, **options)


__all__ = ["__version__", "load_policy"]
