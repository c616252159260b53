"""The cached input pipeline yields what the per-sample loader yields, for the same seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from edgeact.data.dataset import EpisodeDataset, ImageAugment
from edgeact.data.episodes import load_episodes
from edgeact.data.frame_cache import build_cache, open_cache
from edgeact.sim.record import record_episodes
from edgeact.training.pipeline import (
    CachedFrames,
    TrainBatches,
    batch_images,
    eval_batches,
    images_by_tensor_ops,
    step_seed,
)
from edgeact.training.sampler import GlobalBatchSampler

CAM = "observation.images.cam_front"
CHUNK = 6


@pytest.fixture(scope="module")
def episodes(tmp_path_factory):
    root = tmp_path_factory.mktemp("episodes")
    record_episodes(root, 3, image_size=(72, 128), seconds=1.0, seed=11)  # resized to 48x64 below
    return root


@pytest.fixture(scope="module")
def cached(episodes, tmp_path_factory):
    eps = load_episodes(episodes)
    cache = build_cache(eps, (48, 64), tmp_path_factory.mktemp("cache"))
    return eps, cache


def reference_batch(dataset: EpisodeDataset, sampler: GlobalBatchSampler, seed: int, step: int) -> dict:
    """The per-sample loader's batch of ``step``, its generator seeded as the pipeline seeds that step."""
    batches = iter(DataLoader(dataset, batch_sampler=GlobalBatchSampler(
        sampler.num_samples, sampler.global_batch, seed=sampler.seed, start_step=step)))
    torch.manual_seed(step_seed(seed, step))  # after iter(): a DataLoader draws its workers' base seed there
    return next(batches)


@pytest.mark.parametrize("augment", [True, False])
def test_cached_batches_are_the_per_sample_loaders_samples(cached, augment):
    eps, cache = cached
    reference = EpisodeDataset(eps, CHUNK, image_size=(48, 64), augment=augment, flip=True)
    dataset = EpisodeDataset(eps, CHUNK, image_size=(48, 64), flip=True)
    sampler = GlobalBatchSampler(len(dataset), 8, seed=4, start_step=3)
    batches = TrainBatches(dataset, sampler, torch.device("cpu"), frames=CachedFrames(cache, np.arange(len(dataset))),
                           seed=7, augment=augment)
    flips = 0
    for step in range(3, 3 + sampler.batches_per_epoch + 2):  # into the next epoch
        batch, ref = next(batches), reference_batch(reference, sampler, 7, step)
        assert batch.index.tolist() == ref["index"].tolist() == sampler.indices(step)
        assert torch.equal(batch.state, ref["observation.state"])  # steering negated where flipped
        assert torch.equal(batch.actions, ref["action"])
        assert torch.equal(batch.pad, ref["action_is_pad"])
        flips += int(batch.flip.sum())
        # on the CPU OpenCV augments each frame, as the per-sample loader does: the same pixels
        images = batch_images(batch, ImageAugment() if augment else None)
        assert torch.equal(images, ref[CAM])
        # the tensor ops (what runs on a GPU) within a grey level or two of OpenCV's fixed point
        on_device = images_by_tensor_ops(batch.frames, batch.rand, batch.flip, ImageAugment() if augment else None)
        diff = (on_device - ref[CAM]).abs() * 255
        assert float(diff.max()) <= 2.01 and float(diff.mean()) < 0.1
    assert 0 < flips < 8 * (sampler.batches_per_epoch + 2)


def test_tensor_augmentation_matches_opencv_frame_by_frame(cached):
    eps, cache = cached
    frames = torch.from_numpy(np.array(cache.frames[:16]))
    rand = torch.rand(16, 8, generator=torch.Generator().manual_seed(0))
    rand[0, 6:] = 0.5  # no shift: the colour map alone
    aug = ImageAugment()
    opencv = np.stack([aug(f, rand=r.numpy()) for f, r in zip(frames.numpy(), rand)]).transpose(0, 3, 1, 2)
    tensor = aug.batch(frames, rand).numpy()
    assert np.abs(tensor - opencv).max() <= 2
    assert np.abs(tensor[0] - opencv[0]).max() <= 1
    assert (tensor != opencv).mean() < 0.1


def test_decoding_per_batch_gives_the_cached_frames(cached):
    eps, cache = cached
    dataset = EpisodeDataset(eps, CHUNK, image_size=(48, 64), flip=True)
    sampler = GlobalBatchSampler(len(dataset), 4, seed=1)
    with_cache = TrainBatches(dataset, sampler, torch.device("cpu"),
                              frames=CachedFrames(cache, np.arange(len(dataset))), seed=2, augment=True)
    decoding = TrainBatches(dataset, sampler, torch.device("cpu"), frames=None, seed=2, augment=True, workers=1)
    for _ in range(3):
        a, b = next(with_cache), next(decoding)
        assert torch.equal(a.frames, b.frames) and torch.equal(a.rand, b.rand) and torch.equal(a.state, b.state)
    decoding.close()
    assert torch.equal(with_cache.batch_at(0).frames, decoding.batch_at(0).frames)


def test_draws_depend_on_seed_and_step_not_on_the_number_of_processes(cached):
    eps, cache = cached
    dataset = EpisodeDataset(eps, CHUNK, image_size=(48, 64), flip=True)
    frames = CachedFrames(cache, np.arange(len(dataset)))

    def run(rank, world):
        sampler = GlobalBatchSampler(len(dataset), 8, rank=rank, world_size=world, seed=3, start_step=5)
        return next(TrainBatches(dataset, sampler, torch.device("cpu"), frames=frames, seed=9, augment=True))

    one, halves = run(0, 1), [run(r, 2) for r in (0, 1)]
    for name in ("index", "rand", "flip", "state", "actions", "frames"):
        assert torch.equal(getattr(one, name), torch.cat([getattr(h, name) for h in halves])), name


def test_validation_batches_cover_every_item_in_order(cached):
    eps, cache = cached
    dataset = EpisodeDataset(eps[1:], CHUNK, image_size=(48, 64))
    rows = cache.rows([1, 2], [len(eps[1]), len(eps[2])])
    batches = list(eval_batches(dataset, CachedFrames(cache, rows), batch_size=16))
    assert torch.cat([b.index for b in batches]).tolist() == list(range(len(dataset)))
    assert all(b.rand is None and b.flip is None for b in batches)
    first = batches[0]
    assert torch.equal(first.frames[0], torch.from_numpy(dataset.frame(0)))
    assert torch.equal(batch_images(first, None), torch.stack([dataset[i][CAM] for i in range(len(first.index))]))


def test_the_cache_is_reused_and_rebuilt_when_episodes_change(episodes, tmp_path):
    eps = load_episodes(episodes)
    built = build_cache(eps, (48, 64), tmp_path)
    again = open_cache(eps, (48, 64), tmp_path)
    assert again is not None and again.path == built.path
    assert np.array_equal(again.frames[5], eps[0].fitted_frame(5, (48, 64)))
    assert open_cache(eps, (24, 32), tmp_path) is None  # another size: not this cache
    # an episode re-recorded (a frame file rewritten) gives another key: the old cache is no longer used
    frame = eps[0].frame_paths[0]
    frame.write_bytes(frame.read_bytes())
    import os

    os.utime(frame, ns=(frame.stat().st_atime_ns, frame.stat().st_mtime_ns + 10**9))
    changed = load_episodes(episodes)
    assert open_cache(changed, (48, 64), tmp_path) is None
    rebuilt = build_cache(changed, (48, 64), tmp_path)
    assert rebuilt.path != built.path and not built.path.exists()  # the stale one is deleted
    assert [p.name for p in tmp_path.iterdir()] == [rebuilt.path.name]  # no temporary file left


def test_an_interrupted_build_leaves_no_cache(episodes, tmp_path, monkeypatch):
    eps = load_episodes(episodes)

    def fail(self, i, size):
        raise OSError("disk full")

    monkeypatch.setattr(type(eps[0]), "fitted_frame", fail)
    with pytest.raises(OSError, match="disk full"):
        build_cache(eps, (48, 64), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_training_builds_the_cache_beside_the_episodes_once(episodes, monkeypatch):
    from edgeact.data.frame_cache import CACHE_DIR_NAME
    from edgeact.training.pipeline import frame_cache

    eps = load_episodes(episodes)
    said = []
    first = frame_cache(eps, (24, 32), episodes, progress=said.append)
    assert first.path.parent == episodes / CACHE_DIR_NAME and any("decoding 90 frames" in s for s in said)
    said.clear()
    again = frame_cache(eps, (24, 32), episodes, progress=said.append)
    assert again.path == first.path and said == []  # reused, not rebuilt
    assert load_episodes(episodes)[0].name == eps[0].name  # the hidden folder is not read as an episode
    assert frame_cache(eps, (24, 32), episodes, mode="off") is None
    monkeypatch.setattr("edgeact.data.frame_cache.fits_on_disk", lambda directory, nbytes: False)
    assert frame_cache(eps, (12, 16), episodes, progress=said.append) is None
    assert "would not fit" in said[0] and "decoded as batches load" in said[0]
