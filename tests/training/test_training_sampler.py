"""The global batch sampler."""

from __future__ import annotations

import pytest

from edgeact.errors import DataError
from edgeact.training.sampler import GlobalBatchSampler


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
