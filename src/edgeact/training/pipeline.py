"""The training input pipeline: the CPU indexes, the device augments.

A batch leaves the CPU as uint8 frames, exactly as decoded (from the decoded-frame cache:
:mod:`edgeact.data.frame_cache`, or decoded by DataLoader workers where there is no cache),
with its labels and the random draws of its augmentation. On CUDA every part goes through
pinned buffers and is copied without waiting, so the next batch is gathered while the GPU
runs the step; the colour jitter, shift and flip then run on the GPU on the whole batch
(:meth:`ImageAugment.batch`). On the CPU there is no transfer, and OpenCV augments each
frame (:meth:`ImageAugment.__call__`), which is faster there than the tensor ops.

The draws of step ``s`` come from ``(seed, s)`` alone, drawn for the global batch and sliced
per process like the samples (:class:`GlobalBatchSampler`): a run gives the same samples and
augmentations whatever the number of processes or loader workers, and resumes with them.
Per sample they are what :class:`EpisodeDataset` draws from torch's generator, in its order
(8 for the augmentation, then 1 for the flip), so with one process the pipeline yields what
the per-sample dataset yields after ``torch.manual_seed`` of the same seed
(``tests/training/test_training_pipeline.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgeact.data.dataset import EpisodeDataset, ImageAugment
from edgeact.data.episodes import Episode
from edgeact.data.frame_cache import FrameCache
from edgeact.errors import ConfigError
from edgeact.training.distributed import DistContext
from edgeact.training.sampler import GlobalBatchSampler

AUGMENT_DRAWS = 8  # per sample, as ImageAugment takes them; one more decides the flip


@dataclass
class Batch:
    """One process's share of a global batch; images not yet augmented."""

    frames: torch.Tensor  # (B, H, W, 3) uint8 RGB, as decoded at the model's size
    state: torch.Tensor  # (B, S) float32, mirrored where ``flip``
    actions: torch.Tensor  # (B, chunk, A) float32, mirrored where ``flip``
    pad: torch.Tensor  # (B, chunk) bool: action past the episode's end
    index: torch.Tensor  # (B,) int64: the dataset items
    rand: torch.Tensor | None = None  # (B, 8) float32: the augmentation's draws; None: not augmented
    flip: torch.Tensor | None = None  # (B,) bool: mirrored left-right; None: flip off

    def to(self, device: torch.device, non_blocking: bool = False) -> Batch:
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> Batch:
        return self._map(lambda t: t.pin_memory())

    def copy_(self, other: Batch) -> None:
        """Overwrite these tensors with ``other``'s (same shapes), in place."""
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if mine is not None and mine is not theirs:
                mine.copy_(theirs, non_blocking=True)

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Batch:
        mapped: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            mapped[f.name] = None if value is None else fn(value)
        return replace(self, **mapped)


@dataclass
class _Slot:
    host: Batch  # pinned
    copied: torch.cuda.Event = field(default_factory=torch.cuda.Event)  # recorded after the copy from ``host``


def batch_images(batch: Batch, augment: ImageAugment | None) -> torch.Tensor:
    """The batch's images as the model takes them before normalization: (B, 3, H, W) float32 in [0, 1],
    augmented with the batch's draws and mirrored where it says, on the batch's device: by OpenCV frame
    by frame on the CPU (faster there), by :func:`images_by_tensor_ops` elsewhere."""
    rand = batch.rand if augment is not None else None
    if batch.frames.device.type == "cpu":
        return _images_on_cpu(batch.frames.numpy(), rand, batch.flip, augment)
    return images_by_tensor_ops(batch.frames, rand, batch.flip, augment)


def images_by_tensor_ops(frames: torch.Tensor, rand: torch.Tensor | None, flip: torch.Tensor | None,
                         augment: ImageAugment | None) -> torch.Tensor:
    """:func:`batch_images` on the whole batch in a few tensor ops, on any device (a GPU's path)."""
    if augment is not None and rand is not None:
        x = augment.batch(frames, rand)
    else:
        x = frames.permute(0, 3, 1, 2).float()
    if flip is not None:
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x.div_(255.0).contiguous()


def _images_on_cpu(frames: np.ndarray, rand: torch.Tensor | None, flip: torch.Tensor | None,
                   augment: ImageAugment | None) -> torch.Tensor:
    out = np.empty((len(frames), frames.shape[3], frames.shape[1], frames.shape[2]), np.uint8)
    for i, img in enumerate(frames):
        if augment is not None and rand is not None:
            img = augment(img, rand=rand[i].numpy())
        if flip is not None and bool(flip[i]):
            img = img[:, ::-1]
        out[i] = img.transpose(2, 0, 1)
    return torch.from_numpy(out).float().div_(255.0)


class CachedFrames:
    """The frames of a dataset's items, read from a :class:`FrameCache` by row."""

    def __init__(self, cache: FrameCache, rows: np.ndarray) -> None:
        self._frames = cache.frames
        self._rows = np.asarray(rows, np.int64)

    def gather(self, indices: np.ndarray, out: torch.Tensor | None = None) -> torch.Tensor:
        """Items ``indices`` as one (B, H, W, 3) uint8 tensor (into ``out`` when given, e.g. pinned memory).

        A frame at a time with numpy: one memcpy each, on this thread. ``torch.index_select`` on the
        mapped file took 40x longer with two threads than with one (278 vs 6-8 ms for 64 frames at
        360x640 on the 2-core machine), and a copy this size gains nothing from threads anyway.
        """
        if out is None:
            out = torch.empty((len(indices), *self._frames.shape[1:]), dtype=torch.uint8)
        target = out.numpy()
        for i, row in enumerate(self._rows[indices]):
            target[i] = self._frames[row]
        return out


class _DecodedFrames(torch.utils.data.Dataset):
    """Item ``i``: the dataset's frame, decoded (and resized) by a loader worker; for data without a cache."""

    def __init__(self, dataset: EpisodeDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(self.dataset.frame(int(index)))


def main_process_threads(device: torch.device, processes_per_node: int, workers: int) -> None:
    """On CUDA, the training process's torch threads: its share of the cores, less its loader workers.

    There its CPU work is launching kernels and gathering batches; with torch's default of a
    thread per core in every process, and every loader worker's own pools, 16 cores ran some
    60 threads and the rate halved (GPU-TRAINING-NOTES.md: ``OMP_NUM_THREADS=1`` doubled it).
    ``OMP_NUM_THREADS``, when set, is left as given; on the CPU the step's own threads are the
    work and stay as they are.
    """
    import os

    from edgeact.cpu import physical_cores

    if device.type != "cuda" or "OMP_NUM_THREADS" in os.environ:
        return
    torch.set_num_threads(max(1, physical_cores() // max(1, processes_per_node) - workers))


def quiet_worker_threads(_worker_id: int = 0) -> None:
    """One thread each for OpenCV and torch in a loader worker: the workers are the parallelism, and
    each one's own pools (a thread per core, in every worker) would fight the step for the cores."""
    import cv2

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


class TrainBatches(Iterator[Batch]):
    """This process's training batches on ``device``, from step ``sampler.start_step`` on (endless).

    ``frames``: the cached frames of ``dataset``'s items, or None to decode them with
    ``workers`` DataLoader processes (0: in this process). ``augment`` and the dataset's
    flip decide which draws each batch carries; ``seed`` with the step decides their values.
    """

    SLOTS = 2  # pinned staging buffers: one is filled while the other's copy may still run

    def __init__(self, dataset: EpisodeDataset, sampler: GlobalBatchSampler, device: torch.device, *,
                 frames: CachedFrames | None, seed: int, augment: bool, workers: int = 0) -> None:
        self.dataset, self.sampler, self.device = dataset, sampler, device
        self.seed, self.augment = int(seed), bool(augment)
        self._frames = frames
        self._step = sampler.start_step
        self._pinned = device.type == "cuda"
        self._slots: list[_Slot] = []
        self._staged = 0
        self._decoded: Iterator[torch.Tensor] | None = None
        if frames is None:
            # spawned, not forked: a fork copies OpenCV's and OpenMP's thread pools in whatever state the
            # training process left them, and a worker touching them can then wait forever
            loader = torch.utils.data.DataLoader(
                _DecodedFrames(dataset), batch_sampler=_From(sampler), num_workers=workers,
                persistent_workers=workers > 0, worker_init_fn=quiet_worker_threads if workers > 0 else None,
                multiprocessing_context="spawn" if workers > 0 else None)
            self._decoded = iter(loader)

    @property
    def draws_per_sample(self) -> int:
        return AUGMENT_DRAWS * self.augment + (self.dataset.mirror is not None)

    def batch_at(self, step: int) -> Batch:
        """The batch of ``step`` on the device, without moving on (frames decoded here if not cached)."""
        indices = np.asarray(self.sampler.indices(step), np.int64)
        if self._frames is not None:
            frames = self._frames.gather(indices)
        else:
            frames = torch.from_numpy(np.stack([self.dataset.frame(int(i)) for i in indices]))
        return self._host_batch(frames, indices, step).to(self.device)


    def __next__(self) -> Batch:
        step = self._step
        self._step += 1
        indices = np.asarray(self.sampler.indices(step), np.int64)
        if not self._pinned:
            return self._host_batch(self._gather(indices), indices, step).to(self.device)
        slot = self._free_slot()
        frames = self._gather(indices, out=slot.host.frames if slot is not None else None)
        batch = self._host_batch(frames, indices, step)
        if slot is None:  # the first use of this slot: pin a buffer shaped like the batch
            slot = _Slot(batch.pin_memory())
            self._slots.append(slot)
        else:
            slot.host.copy_(batch)  # the labels and draws; the frames were gathered in place
        on_device = slot.host.to(self.device, non_blocking=True)
        slot.copied.record()  # the slot may be refilled once the copy has run
        return on_device

    def _free_slot(self) -> _Slot | None:
        """The next pinned slot once its last copy to the device is done; None while slots are still made."""
        k = self._staged % self.SLOTS
        self._staged += 1
        if k == len(self._slots):
            return None
        self._slots[k].copied.synchronize()  # queued a step ago: done unless the device fell behind
        return self._slots[k]

    def _gather(self, indices: np.ndarray, out: torch.Tensor | None = None) -> torch.Tensor:
        if self._frames is not None:
            return self._frames.gather(indices, out)
        assert self._decoded is not None
        frames = next(self._decoded)
        return frames if out is None else out.copy_(frames)

    def _host_batch(self, frames: torch.Tensor, indices: np.ndarray, step: int) -> Batch:
        state, actions, pad = self.dataset.labels(indices)
        draws = step_draws(self.seed, step, self.sampler, self.draws_per_sample)
        rand = draws[:, :AUGMENT_DRAWS] if self.augment else None
        flip = None
        if self.dataset.mirror is not None:
            flip = draws[:, -1] < 0.5
            state_signs, action_signs = self.dataset.mirror
            state[flip.numpy()] *= state_signs
            actions[flip.numpy()] *= action_signs
        return Batch(frames, torch.from_numpy(state), torch.from_numpy(actions), torch.from_numpy(pad),
                     torch.from_numpy(indices), rand, flip)

    def close(self) -> None:
        self._decoded = None  # ends the loader's workers


class _From:
    """A batch sampler over ``sampler``'s steps (for the DataLoader that decodes frames)."""

    def __init__(self, sampler: GlobalBatchSampler) -> None:
        self.sampler = sampler

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.sampler)


def step_seed(seed: int, step: int) -> int:
    """The seed of step ``step``'s draws: a hash of the run's seed and the step."""
    return int(np.random.SeedSequence([int(seed), int(step)]).generate_state(1, np.uint64)[0])


def step_draws(seed: int, step: int, sampler: GlobalBatchSampler, n: int) -> torch.Tensor:
    """This process's rows of the (global batch, n) uniform draws of ``step``, from ``(seed, step)`` alone."""
    if n == 0:
        return torch.empty(sampler.per_rank, 0)
    generator = torch.Generator().manual_seed(step_seed(seed, step))
    draws = torch.rand(sampler.global_batch, n, generator=generator)
    lo = sampler.rank * sampler.per_rank
    return draws[lo: lo + sampler.per_rank]


def eval_batches(dataset: EpisodeDataset, frames: CachedFrames | None, batch_size: int) -> Iterator[Batch]:
    """Every item of ``dataset`` in order, in batches on the CPU, not augmented nor mirrored (validation)."""
    for lo in range(0, len(dataset), batch_size):
        indices = np.arange(lo, min(lo + batch_size, len(dataset)), dtype=np.int64)
        if frames is not None:
            images = frames.gather(indices)
        else:
            images = torch.from_numpy(np.stack([dataset.frame(int(i)) for i in indices]))
        state, actions, pad = dataset.labels(indices)
        yield Batch(images, torch.from_numpy(state), torch.from_numpy(actions), torch.from_numpy(pad),
                    torch.from_numpy(indices))


def frame_cache(episodes: list[Episode], size: tuple[int, int], data: Path, *, mode: str = "auto",
                directory: Path | None = None, ctx: DistContext | None = None,
                progress: Callable[[str], None] = print) -> FrameCache | None:
    """The decoded-frame cache of ``episodes`` at ``size``: opened, or built (with a progress bar) when there
    is none or the episodes changed; None with ``mode`` "off" or when it would not fit on the disk.

    Under torchrun the first process of each machine builds it while the others wait, then all map it.
    """
    from edgeact.data import frame_cache as fc
    from edgeact.training import distributed

    if mode not in ("auto", "off"):
        raise ConfigError(f"frame cache {mode!r}: use auto or off")
    if mode == "off":
        return None
    ctx = ctx or DistContext()
    directory = Path(directory) if directory is not None else fc.default_cache_dir(data)
    cache = fc.open_cache(episodes, size, directory)
    if cache is None and ctx.local_rank == 0:
        nbytes = fc.cache_bytes(episodes, size)
        if not fc.fits_on_disk(directory, nbytes):
            progress(f"the decoded frames ({nbytes / 2**30:.1f} GiB) would not fit in {directory} with 10% of its "
                     "disk left free: frames are decoded as batches load (give another --frame-cache-dir, or more "
                     "--workers)")
        else:
            cache = _build_with_bar(fc, episodes, size, directory, nbytes, progress)
    distributed.barrier(ctx)
    if cache is None and ctx.local_rank != 0:
        cache = fc.open_cache(episodes, size, directory)
    return cache


def _build_with_bar(fc, episodes, size, directory: Path, nbytes: int, progress: Callable[[str], None]) -> FrameCache:
    import sys

    from tqdm import tqdm

    from edgeact.cpu import physical_cores

    frames = sum(len(ep) for ep in episodes)
    progress(f"decoding {frames} frames once at {size[0]}x{size[1]} into {directory} ({nbytes / 2**20:.0f} MiB; "
             "reused while the episodes and the size stay the same)")
    with tqdm(total=frames, desc="decode", unit="frame", mininterval=0.5 if sys.stderr.isatty() else 30.0) as bar:
        return fc.build_cache(episodes, size, directory, threads=physical_cores(), progress=bar.update)
