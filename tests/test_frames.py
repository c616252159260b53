import numpy as np
import pytest

from edgeact.errors import InputError
from edgeact.frames import crop_box, fit_frame


def test_crop_box_centers_on_the_target_aspect():
    assert crop_box((480, 640), (360, 640)) == (60, 0, 360, 640)  # 4:3 → 16:9 crops top and bottom
    assert crop_box((360, 960), (360, 640)) == (0, 160, 360, 640)  # wider → crops the sides
    assert crop_box((360, 640), (96, 128)) == (0, 80, 360, 480)


def test_fit_frame_crops_then_resizes_keeping_rgb():
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:60] = (255, 0, 0)  # a red band that the 16:9 crop removes
    frame[60:420] = (0, 0, 255)
    out = fit_frame(frame, (90, 160))
    assert out.shape == (90, 160, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    assert (out[..., 2] == 255).all() and (out[..., 0] == 0).all()


def test_fit_frame_identity_grey_and_rgba():
    f = np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    assert fit_frame(f, (24, 32)) is f or np.array_equal(fit_frame(f, (24, 32)), f)
    assert fit_frame(np.zeros((48, 64), np.uint8), (24, 32)).shape == (24, 32, 3)
    assert fit_frame(np.zeros((48, 64, 4), np.uint8), (24, 32)).shape == (24, 32, 3)
    assert fit_frame(np.zeros((10, 10, 3), np.uint8), (20, 40)).shape == (20, 40, 3)  # upscale


def test_fit_frame_rejects_bad_input():
    with pytest.raises(InputError):
        fit_frame(np.zeros((4, 4, 3), np.float32), (2, 2))
    with pytest.raises(InputError):
        fit_frame(np.zeros((4, 4, 5), np.uint8), (2, 2))
