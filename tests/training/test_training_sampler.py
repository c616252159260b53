"""The global batch sampler and the prefetch thread."""

from __future__ import annotations

import threading
import time

import pytest

from edgeact.errors import DataError
from edgeact.training.batches import GlobalBatchSampler, Prefetcher


def test_sampler_resumes_exactly_where_a_run_stopped_and_covers_each_epoch():
    full = GlobalBatchSampler(40, 8, seed=3)
    resumed = GlobalBatchSampler(40, 8, seed=3, start_step=7)
    it = iter(resumed)
    assert [next(it) for _ in range(3)] == [full.indices(s) for s in (7, 8, 9)]
    epoch = sorted(i for s in range(full.batches_per_epoch) for i in full.indices(s))
    assert epoch == list(range(40))  # every sample once per epoch
    assert full.indices(0) != full.indices(5)  # the next epoch is a new order
    with pytest.raises(DataError, match="fewer than one batch"):
        GlobalBatchSampler(4, 8)


def test_prefetcher_runs_ahead_and_passes_on_errors():
    produced = []

    def batches():
        for i in range(5):
            produced.append(i)
            yield i

    pre = Prefetcher(batches(), depth=2)
    time.sleep(0.2)
    assert produced[:3] == [0, 1, 2]  # built ahead while nobody asked (2 queued + 1 waiting)
    assert list(pre) == [0, 1, 2, 3, 4]

    def broken():
        yield 1
        raise ValueError("bad frame")

    pre = Prefetcher(broken())
    assert next(pre) == 1
    with pytest.raises(ValueError, match="bad frame"):
        next(pre)


def test_close_stops_an_endless_producer():
    def endless():
        i = 0
        while True:
            i += 1
            yield i

    before = threading.active_count()
    pre = Prefetcher(endless(), depth=2)
    assert next(pre) == 1
    pre.close()
    assert threading.active_count() == before
