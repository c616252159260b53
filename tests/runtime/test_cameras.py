
import numpy as np
import pytest

from edgeact.errors import CameraError, ConfigError
from edgeact.runtime.cameras import OpenCVCamera, Picamera2Camera, ReplayCamera, open_camera
from edgeact.runtime.interfaces import Camera
from polling import wait_for


def test_replay_plays_the_episode_in_order_then_ends(episode_dir):
    cam = ReplayCamera(episode_dir, fps=200.0)  # faster than the episode's 30 fps to keep the test short
    cam.start()
    try:
        seen = []
        f = cam.wait_new(-1, 2.0)
        while f is not None:
            seen.append(f.index)
            assert f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8
            f = cam.wait_new(f.index, 2.0)
        assert cam.finished and seen[-1] == 11 and seen == sorted(seen)
    finally:
        cam.stop()


def test_replay_uses_the_episode_fps_and_accepts_a_parent_directory(episode_dir):
    cam = open_camera(f"replay:{episode_dir.parent}")
    assert isinstance(cam, ReplayCamera)
    cam._open()
    assert cam.fps == 30.0 and len(cam._files) == 12
    assert isinstance(open_camera(str(episode_dir)), ReplayCamera)  # a directory needs no prefix


def test_video_file_camera_is_rgb(tmp_path):
    import cv2

    path = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (64, 48))
    for _ in range(5):
        w.write(np.full((48, 64, 3), (255, 0, 0), np.uint8))  # BGR blue
    w.release()
    cam = open_camera(str(path))
    assert isinstance(cam, OpenCVCamera)
    cam.start()
    try:
        f = cam.wait_new(-1, 2.0)
        assert f is not None and f.image[..., 2].mean() > 200 and f.image[..., 0].mean() < 50  # blue in RGB
        assert wait_for(lambda: cam.finished, 3.0)
    finally:
        cam.stop()


def test_camera_errors_are_clear():
    try:
        import picamera2  # noqa: F401
    except ImportError:
        with pytest.raises(CameraError, match="picamera2 is not installed"):
            Picamera2Camera().start()
    assert isinstance(open_camera("picamera2:1"), Picamera2Camera)
    assert isinstance(open_camera("0"), OpenCVCamera) and isinstance(open_camera(3), OpenCVCamera)
    with pytest.raises(ConfigError, match="unknown camera"):
        open_camera("no/such/thing")
    with pytest.raises(ConfigError, match="open_parts"):
        open_camera("sim")  # the simulator is wired above the runtime (edgeact.drive)
    with pytest.raises(CameraError, match="does not exist"):
        ReplayCamera("/no/such/dir").start()


def test_every_camera_follows_the_camera_protocol(episode_dir):
    for cam in (ReplayCamera(episode_dir), OpenCVCamera(0), Picamera2Camera()):
        assert isinstance(cam, Camera)
        assert cam.stats() is None and cam.on_frame is None
