"""``edgeact bench --loader EPISODES --size HxW --workers N``: where a training batch's time goes.

Two ways to build the same batches (:mod:`edgeact.training.pipeline` says why they are the same):

- the per-sample loader: :class:`EpisodeDataset` items (read the JPEG, decode, resize,
  augment with OpenCV, flip, to float) collated by a DataLoader with N worker processes,
  then copied to the device as float32;
- the cached pipeline: rows of the decoded-frame cache gathered into one uint8 batch, its
  labels and draws; on CUDA through pinned memory, augmented on the GPU; on the CPU augmented
  by OpenCV frame by frame.

Per-sample costs are timed one stage at a time on one thread, in that thread's CPU time (so
other processes on a shared machine do not inflate them; on CUDA the transfer and the GPU's
augmentation are waited for, and their wall-clock time is counted); samples/s is what each
pipeline delivers end to end over a few batches, in wall-clock time (the per-sample loader
with N workers, the cached pipeline in the training process, where it runs). Nothing is
trained.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np


@dataclass
class LoaderReport:
    size: tuple[int, int]
    batch: int
    workers: int
    device: str
    threads: int  # torch threads of the process running the cached pipeline
    before_ms: dict[str, float] = field(default_factory=dict)  # per sample, per stage (one thread)
    after_ms: dict[str, float] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)  # samples/s delivered, by pipeline
    bytes_per_sample: dict[str, int] = field(default_factory=dict)  # what crosses to the device

    def format_table(self) -> str:
        h, w = self.size
        lines = [f"loader at {h}x{w}, batch {self.batch}, {self.workers} worker(s), {self.threads} torch thread(s), "
                 f"device {self.device}", "",
                 "| per sample, one thread (CPU time) | per-sample loader (before) | cached pipeline (after) |",
                 "|---|---|---|"]
        for stage in dict.fromkeys([*self.before_ms, *self.after_ms]):
            lines.append(f"| {stage} | {_ms(self.before_ms.get(stage))} | {_ms(self.after_ms.get(stage))} |")
        before, after = sum(self.before_ms.values()), sum(self.after_ms.values())
        lines.append(f"| **total** | **{_ms(before)}** | **{_ms(after)}** |")
        lines.append(f"| bytes to the device | {self.bytes_per_sample['before']:,} (float32) | "
                     f"{self.bytes_per_sample['after']:,} (uint8) |")
        lines += ["", "| delivered end to end | samples/s |", "|---|---|"]
        lines += [f"| {name} | {rate:,.0f} |" for name, rate in self.rates.items()]
        return "\n".join(lines)


def _clock() -> float:
    return time.thread_time()  # CPU time of this thread: stages run on it alone (_one_thread)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.3f} ms"


def bench_loader(data: str | os.PathLike, *, size: tuple[int, int] | None = None, batch: int = 64, workers: int = 0,
                 device: str = "cpu", batches: int = 10, samples: int = 64, chunk_size: int = 30,
                 progress: Callable[[str], None] = print) -> LoaderReport:
    """Time both pipelines on the episodes in ``data`` at ``size`` (default: the episodes' own)."""
    import torch

    from edgeact.data.dataset import EpisodeDataset
    from edgeact.data.episodes import load_episodes
    from edgeact.training.pipeline import CachedFrames, frame_cache

    dev = torch.device(device)
    episodes = load_episodes(data)
    size = size or episodes[0].image_size
    per_sample = EpisodeDataset(episodes, chunk_size, image_size=size, augment=True, flip=True, cache=False)
    plain = EpisodeDataset(episodes, chunk_size, image_size=size, flip=True)
    cache = frame_cache(episodes, size, Path(data), progress=progress)
    if cache is None:
        _no_room(data)
    frames = CachedFrames(cache, np.arange(len(plain)))
    touched = time.perf_counter()
    int(cache.frames.reshape(-1)[::4096].sum())  # map every page once: what a run's first epoch does
    progress(f"mapped the cache's {cache.frames.nbytes / 2**20:.0f} MiB in {time.perf_counter() - touched:.1f} s "
             "(once per run; the times below are after it)")
    batch = min(batch, len(plain))
    report = LoaderReport(size, batch, workers, str(dev), torch.get_num_threads())
    rng = np.random.default_rng(0)
    picks = rng.choice(len(plain), size=min(samples, len(plain)), replace=False)
    with _one_thread():
        report.before_ms = _before_stages(per_sample, picks, batch, dev)
        report.after_ms = _after_stages(plain, frames, picks, batch, dev)
    h, w = size
    report.bytes_per_sample = {"before": 3 * h * w * 4, "after": 3 * h * w}
    progress("timing the per-sample loader end to end")
    report.rates[f"per-sample loader, {workers} worker(s)"] = _rate(
        _per_sample_batches(per_sample, batch, workers, dev), batch, batches, dev)
    progress("timing the cached pipeline end to end")
    for name, batches_of in _cached_pipelines(plain, frames, batch, dev):
        report.rates[name] = _rate(batches_of, batch, batches, dev)
    return report


def _no_room(data: Any) -> NoReturn:
    from edgeact.errors import DataError

    raise DataError(f"the decoded frames of {data} do not fit on its disk with 10% left free; free some space")


@contextmanager
def _one_thread() -> Iterator[None]:
    """torch and OpenCV on one thread, so that a stage's thread CPU time is all its work (and other
    processes on a shared machine, which stretch wall-clock time, do not count)."""
    import cv2
    import torch

    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv_threads)


def _before_stages(dataset, picks: np.ndarray, batch: int, device) -> dict[str, float]:
    """One sample's cost in the per-sample loader, stage by stage, as EpisodeDataset does each."""
    import cv2
    import torch
    from torch.utils.data import default_collate

    from edgeact.frames import fit_frame

    t = dict.fromkeys(("read", "decode", "resize", "augment + flip", "to float", "collate", "transfer"), 0.0)
    items = []
    for i in picks:
        ep, frame = dataset.location(int(i))
        path = ep.frame_paths[frame]
        t0 = _clock()
        raw = np.fromfile(path, np.uint8)
        t1 = _clock()
        bgr = cv2.imdecode(raw, cv2.IMREAD_COLOR)
        assert bgr is not None, path
        img = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        t2 = _clock()
        img = fit_frame(img, dataset.image_size)
        t3 = _clock()
        img = dataset.augment(img)
        if float(torch.rand(())) < 0.5:
            img = img[:, ::-1]
        t4 = _clock()
        image = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255.0)
        t5 = _clock()
        for stage, dt in zip(("read", "decode", "resize", "augment + flip", "to float"),
                             (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            t[stage] += dt
        item = dataset[int(i)]
        item[dataset.camera_key] = image
        items.append(item)
    n = len(picks)
    for lo in range(0, n, batch):
        group = items[lo:lo + batch]
        t0 = _clock()
        collated = default_collate(group)
        t1 = _clock()
        w1 = time.perf_counter()
        _to_device(collated, device)
        t["collate"] += t1 - t0
        t["transfer"] += time.perf_counter() - w1  # the device's side is not CPU time
    if device.type == "cpu":
        del t["transfer"]
    return {k: v / n for k, v in t.items()}


def _after_stages(dataset, frames, picks: np.ndarray, batch: int, device) -> dict[str, float]:
    """One sample's cost in the cached pipeline: index the cache, labels and draws, augment, transfer."""
    import torch

    from edgeact.data.dataset import ImageAugment
    from edgeact.training.pipeline import Batch, batch_images

    aug = ImageAugment()
    t = dict.fromkeys(("index the cache", "labels + draws", "augment + flip", "to float", "transfer"), 0.0)
    n = 0
    for lo in range(0, len(picks), batch):
        idx = np.sort(picks[lo:lo + batch]).astype(np.int64)
        t0 = _clock()
        gathered = frames.gather(idx)
        t1 = _clock()
        state, actions, pad = dataset.labels(idx)
        rand = torch.rand(len(idx), 9)
        b = Batch(gathered, torch.from_numpy(state), torch.from_numpy(actions), torch.from_numpy(pad),
                  torch.from_numpy(idx), rand[:, :8], rand[:, 8] < 0.5)
        t2 = _clock()
        # on CUDA the copy and the GPU's augmentation are waited for and timed on the wall clock
        clock = time.perf_counter if device.type == "cuda" else _clock
        w2 = clock()
        if device.type == "cuda":
            b = b.pin_memory().to(device, non_blocking=True)
            torch.cuda.synchronize(device)
        w3 = clock()
        batch_images(b, aug)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        w4 = clock()
        t["index the cache"] += t1 - t0
        t["labels + draws"] += t2 - t1
        t["transfer"] += w3 - w2
        t["augment + flip"] += w4 - w3  # on the CPU, augmentation and conversion are one pass
        n += len(idx)
    del t["to float"]
    if device.type == "cpu":
        del t["transfer"]
    else:
        t["augment + flip (on the GPU)"] = t.pop("augment + flip")
    return {k: v / n for k, v in t.items()}


def _per_sample_batches(dataset, batch: int, workers: int, device) -> Iterator[Any]:
    import torch

    from edgeact.training.sampler import GlobalBatchSampler

    sampler = GlobalBatchSampler(len(dataset), batch, seed=0)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                                         persistent_workers=workers > 0)
    for collated in loader:
        yield _to_device(collated, device)


def _cached_pipelines(dataset, frames, batch: int, device) -> Iterator[tuple[str, Iterator[Any]]]:
    """The cached pipeline as training runs it: indexed and copied; on the CPU also augmented (there
    the CPU does it); on CUDA the GPU augments inside the step, so that row is the loader alone."""
    from edgeact.data.dataset import ImageAugment
    from edgeact.training.pipeline import TrainBatches, batch_images
    from edgeact.training.sampler import GlobalBatchSampler

    def batches() -> TrainBatches:
        return TrainBatches(dataset, GlobalBatchSampler(len(dataset), batch, seed=0), device, frames=frames, seed=0,
                            augment=True)

    yield "cached pipeline: indexed (+ copied to the device)", batches()
    aug = ImageAugment()
    where = "on the GPU" if device.type == "cuda" else "by OpenCV"
    yield f"cached pipeline: indexed and augmented {where}", (b for b in batches() if batch_images(b, aug) is not None)


def _to_device(collated: dict, device) -> dict:
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in collated.items()}


def _rate(batches: Iterator[Any], batch: int, n: int, device) -> float:
    """Samples/s over ``n`` batches after the first (which starts workers and touches the cache)."""
    import torch

    next(batches)
    started = time.perf_counter()
    for _ in range(n):
        next(batches)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return n * batch / (time.perf_counter() - started)
