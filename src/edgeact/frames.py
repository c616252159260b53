"""Camera frame → the model's input: center-crop to the model's aspect ratio, then resize.

Shared by the runtime, the simulator's evaluation, the datasets and the calibration
readers, so that every path feeds the model frames fitted the same way.
"""

from __future__ import annotations

import cv2
import numpy as np

from edgeact.errors import InputError


def crop_box(src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the largest centered crop of ``src_hw`` with ``dst_hw``'s aspect."""
    sh, sw = int(src_hw[0]), int(src_hw[1])
    dh, dw = int(dst_hw[0]), int(dst_hw[1])
    if min(sh, sw, dh, dw) <= 0:
        raise InputError(f"sizes must be positive, got frame {src_hw} and target {dst_hw}")
    # Compare aspect ratios with integers: sw/sh vs dw/dh.
    if sw * dh > dw * sh:  # frame is wider than the target: crop the sides
        cw = max(1, int(round(sh * dw / dh)))
        return 0, (sw - cw) // 2, sh, cw
    ch = max(1, int(round(sw * dh / dw)))  # frame is taller (or equal): crop top and bottom
    return (sh - ch) // 2, 0, ch, sw


def fit_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Center-crop ``frame`` to the aspect of ``size`` = (H, W), then resize to exactly (H, W).

    ``frame`` is HxWx3 uint8 RGB (HxW grey and HxWx4 RGBA are converted to RGB). Returns a
    C-contiguous HxWx3 uint8 RGB array; a frame already at ``size`` is returned unchanged.
    Downscaling uses area interpolation (no aliasing), upscaling bilinear.
    """
    if not isinstance(frame, np.ndarray):
        raise InputError(f"frame must be a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise InputError(f"frame must be uint8, got {frame.dtype}")
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    elif frame.ndim == 3 and frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_RGBA2RGB)
    elif frame.ndim != 3 or frame.shape[2] != 3:
        raise InputError(f"frame must be HxWx3 RGB, got shape {frame.shape}")
    h, w = int(size[0]), int(size[1])
    if frame.shape[:2] == (h, w):
        return np.ascontiguousarray(frame)
    top, left, ch, cw = crop_box(frame.shape[:2], (h, w))
    crop = frame[top:top + ch, left:left + cw]
    interp = cv2.INTER_AREA if (ch >= h and cw >= w) else cv2.INTER_LINEAR
    out = cv2.resize(crop, (w, h), interpolation=interp)
    return np.ascontiguousarray(out)
