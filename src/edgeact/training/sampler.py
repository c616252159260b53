"""One global sample order shared by every process.

With several processes (DDP) each must train on its own slice of the *same* global batch,
so that N processes on batch B/N each compute what one process on batch B would, and so
that a run resumed with another number of processes continues with exactly the samples the
original run would have seen next. :class:`GlobalBatchSampler` draws one permutation per
epoch from ``(seed, epoch)`` (identical on every rank), cuts it into global batches, and
gives rank ``r`` the ``r``-th slice of each. Its position is the optimizer step, so resuming
needs only the step.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from edgeact.errors import ConfigError, DataError


class GlobalBatchSampler:
    """Index lists for one rank: its slice of global batch ``k`` for steps ``start_step`` on (endless).

    ``weights`` (one per sample): draw samples with replacement in proportion to them instead
    of a permutation (e.g. human takeovers more often, :func:`edgeact.training.loop.intervention_weights`).
    """

    def __init__(self, num_samples: int, global_batch: int, *, rank: int = 0, world_size: int = 1, seed: int = 0,
                 start_step: int = 0, weights: np.ndarray | None = None) -> None:
        if global_batch % world_size:
            raise ConfigError(
                f"batch size {global_batch} does not split evenly over {world_size} processes; use a multiple of "
                f"{world_size} (the batch size is the global batch, summed over processes)"
            )
        if num_samples < global_batch:
            raise DataError(f"{num_samples} training samples are fewer than one batch of {global_batch}; record "
                            "more episodes or lower --batch-size")
        self.num_samples, self.global_batch = int(num_samples), int(global_batch)
        self.rank, self.world_size, self.seed = int(rank), int(world_size), int(seed)
        self.start_step = int(start_step)
        self.per_rank = self.global_batch // self.world_size
        if weights is not None and (len(weights) != num_samples or not np.all(np.asarray(weights) >= 0)):
            raise ConfigError(f"sample weights must be {num_samples} non-negative numbers")
        self.probabilities = None if weights is None else np.asarray(weights, np.float64) / np.sum(weights)
        self._epoch_order: tuple[int, np.ndarray] = (-1, np.empty(0, np.int64))

    @property
    def batches_per_epoch(self) -> int:
        return self.num_samples // self.global_batch  # the last partial batch is dropped, as drop_last does

    def indices(self, step: int) -> list[int]:
        """This rank's sample indices for optimizer step ``step`` (0-based)."""
        epoch, k = divmod(step, self.batches_per_epoch)
        lo = k * self.global_batch + self.rank * self.per_rank
        return self._order(epoch)[lo : lo + self.per_rank].tolist()

    def _order(self, epoch: int) -> np.ndarray:
        """The global sample order of ``epoch``, drawn once per epoch (not once per step)."""
        if self._epoch_order[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            if self.probabilities is None:
                order = rng.permutation(self.num_samples)
            else:  # weighted draws with replacement, one "epoch" as many draws as samples
                order = rng.choice(self.num_samples, size=self.num_samples, p=self.probabilities)
            self._epoch_order = (epoch, order)
        return self._epoch_order[1]

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        while True:
            yield self.indices(step)
            step += 1
