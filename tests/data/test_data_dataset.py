from __future__ import annotations

import numpy as np
import pytest
import torch
from datahelpers import synthetic_writer
from torch.utils.data import DataLoader

from edgeact.data.dataset import EpisodeDataset, ImageAugment, split_episodes
from edgeact.data.episodes import load_episodes
from edgeact.errors import DataError

torch.set_num_threads(1)


@pytest.fixture
def write_synthetic(tmp_path):
    return synthetic_writer(tmp_path)


CAM = "observation.images.cam_front"


@pytest.fixture
def two_episodes(write_synthetic, tmp_path):
    _, a0 = write_synthetic("episode_000", n=5)
    _, a1 = write_synthetic("episode_001", n=7, offset=0.3)
    return load_episodes(tmp_path / "episodes"), a0, a1


def test_item_layout_and_chunk_padding_at_episode_end(two_episodes):
    eps, a0, a1 = two_episodes
    ds = EpisodeDataset(eps, chunk_size=4)
    assert len(ds) == 12
    item = ds[3]  # episode 0, frame 3 of 5
    img = item[CAM]
    assert img.shape == (3, 24, 32) and img.dtype == torch.float32
    assert float(img.min()) >= 0.0 and float(img.max()) <= 1.0
    assert item["observation.state"].shape == (2,) and item["action"].shape == (4, 2)
    expect = a0[[3, 4, 4, 4]]  # the last action repeats past the end
    np.testing.assert_allclose(item["action"].numpy(), expect, atol=1e-5)
    assert item["action_is_pad"].tolist() == [False, False, True, True]
    np.testing.assert_allclose(item["observation.state"].numpy(), a0[2], atol=1e-5)  # previous command
    assert int(item["episode_index"]) == 0 and int(item["frame_index"]) == 3


def test_chunks_never_cross_into_the_next_episode(two_episodes):
    eps, a0, a1 = two_episodes
    ds = EpisodeDataset(eps, chunk_size=3)
    first_of_second = ds[5]
    assert int(first_of_second["episode_index"]) == 1 and int(first_of_second["frame_index"]) == 0
    np.testing.assert_array_equal(first_of_second["observation.state"].numpy(), [0.0, 0.0])
    np.testing.assert_allclose(first_of_second["action"].numpy(), a1[:3], atol=1e-5)
    assert not first_of_second["action_is_pad"].any()
    last = ds[4]  # last frame of episode 0: all but the first action are padding
    np.testing.assert_allclose(last["action"].numpy(), a0[[4, 4, 4]], atol=1e-5)
    assert last["action_is_pad"].tolist() == [False, True, True]
    assert ds[-1]["action_is_pad"].tolist() == [False, True, True]
    with pytest.raises(IndexError):
        ds[12]


def test_resize_cache_and_dataloader(two_episodes):
    eps, _, _ = two_episodes
    ds = EpisodeDataset(eps, chunk_size=2, image_size=(12, 16), cache=True)
    assert ds[0][CAM].shape == (3, 12, 16)
    assert 0 in ds._cache
    ds.preload()
    assert len(ds._cache) == len(ds)
    batch = next(iter(DataLoader(ds, batch_size=4, shuffle=False)))
    assert batch[CAM].shape == (4, 3, 12, 16)
    assert batch["action"].shape == (4, 2, 2) and batch["action_is_pad"].dtype == torch.bool
    assert ds.state_dim == 2 and ds.action_dim == 2 and ds.fps == 30


def test_augmentation_changes_pixels_not_labels(two_episodes):
    eps, _, _ = two_episodes
    plain = EpisodeDataset(eps, chunk_size=2)
    aug = EpisodeDataset(eps, chunk_size=2, augment=True)
    torch.manual_seed(0)
    a, b = plain[2], aug[2]
    assert a[CAM].shape == b[CAM].shape
    assert not torch.allclose(a[CAM], b[CAM])
    assert float(b[CAM].min()) >= 0.0 and float(b[CAM].max()) <= 1.0
    assert torch.equal(a["action"], b["action"])
    # the middle of the range is the identity
    img = eps[0].load_frame(0)
    same = ImageAugment()(img, rand=np.full(8, 0.5))
    assert np.abs(same.astype(int) - img).max() <= 1


def _jitter_step_by_step(aug: ImageAugment, img: np.ndarray, r: np.ndarray) -> np.ndarray:
    """The colour jitter as its docstring states it, one float pass per step (the specification)."""
    u = lambda k, a: 1.0 + a * (2.0 * r[k] - 1.0)  # noqa: E731
    grey = np.array([0.299, 0.587, 0.114])
    x = img.astype(np.float64) * u(0, aug.brightness)
    x = (x - (x @ grey).mean()) * u(1, aug.contrast) + (x @ grey).mean()
    g = (x @ grey)[..., None]
    x = g + (x - g) * u(2, aug.saturation)
    x *= np.array([u(3, aug.hue), u(4, aug.hue), u(5, aug.hue)])
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def test_colour_jitter_in_one_pass_equals_the_steps_one_by_one(two_episodes):
    eps, _, _ = two_episodes
    aug = ImageAugment(shift_x=0.0, shift_y=0.0)
    rng = np.random.default_rng(0)
    images = [eps[0].load_frame(0), rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)]
    for img in images:
        for _ in range(20):
            r = rng.random(8)
            assert np.abs(aug(img, rand=r).astype(int) - _jitter_step_by_step(aug, img, r)).max() <= 1


def test_split_by_episode():
    names = [f"episode_{i:03d}" for i in range(10)]
    train, val = split_episodes(names, val_fraction=0.2, seed=3)
    assert len(val) == 2 and len(train) == 8
    assert set(train) | set(val) == set(names) and not set(train) & set(val)
    assert split_episodes(names, 0.2, seed=3) == (train, val)
    assert split_episodes(names, 0.2, seed=4) != (train, val)
    assert split_episodes(names[:2], 0.01)[1] != []  # at least one validation episode
    assert split_episodes(names[:1], 0.5) == (names[:1], [])
    with pytest.raises(DataError):
        split_episodes(names, 1.0)


def test_dataset_reports_frames_that_do_not_decode(write_synthetic, tmp_path):
    path, _ = write_synthetic(n=4)
    (path / "frames" / "000002.jpg").write_bytes(b"garbage")
    ds = EpisodeDataset(tmp_path / "episodes", chunk_size=2)
    with pytest.raises(DataError, match="000002.jpg"):
        ds[2]


def test_flip_mirrors_image_steering_and_state_together(two_episodes):
    eps, _, _ = two_episodes
    plain = EpisodeDataset(eps, chunk_size=3)
    flip = EpisodeDataset(eps, chunk_size=3, flip=True)
    flipped = kept = 0
    torch.manual_seed(1)
    for i in range(len(flip)):
        a, b = plain[i], flip[i]
        if torch.equal(a[CAM], b[CAM]):
            kept += 1
            assert torch.equal(a["action"], b["action"]) and torch.equal(a["observation.state"], b["observation.state"])
            continue
        flipped += 1
        assert torch.equal(b[CAM], a[CAM].flip(-1))  # mirrored left-right
        assert torch.equal(b["action"][:, 0], -a["action"][:, 0])  # steering negated
        assert torch.equal(b["action"][:, 1], a["action"][:, 1])  # throttle kept
        assert torch.equal(b["observation.state"], a["observation.state"] * torch.tensor([-1.0, 1.0]))
    assert flipped >= 2 and kept >= 2  # about half and half


def test_flip_is_refused_for_values_without_a_known_mirror(write_synthetic, tmp_path):
    from edgeact.data.dataset import mirror_signs

    assert mirror_signs(["steering", "throttle"]).tolist() == [-1.0, 1.0]
    assert mirror_signs(["s0", "s1"]) is None
    write_synthetic("episode_000", n=4, states=np.zeros((4, 2)), state_names=["arm", "gripper"])
    eps = load_episodes(tmp_path / "episodes")
    with pytest.raises(DataError, match="no-flip"):
        EpisodeDataset(eps, chunk_size=2, flip=True)
