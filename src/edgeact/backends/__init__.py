"""Inference backends behind one protocol; see :func:`edgeact.backends.registry.load_backend`."""

from edgeact.policy import Backend, Frames, PolicySpec

__all__ = ["Backend", "Frames", "PolicySpec"]
