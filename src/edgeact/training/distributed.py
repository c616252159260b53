"""Training on several processes and machines with PyTorch's own DDP, launched by torchrun.

torchrun starts one process per device and tells each who it is through environment
variables (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``);
:func:`from_environment` reads them and :func:`init` joins the process group: NCCL when
training on CUDA GPUs, gloo on CPU. Multi-node runs use torchrun's own flags (``--nnodes``,
``--node-rank``, ``--rdzv-endpoint``); nothing here is specific to one machine.

``edgeact train --nproc N`` re-launches itself under torchrun (:func:`torchrun_argv`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from edgeact.errors import ConfigError


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job; ``world_size == 1`` is plain single-process training."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1  # processes on this machine

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes checkpoints, logs and plots."""
        return self.rank == 0


def from_environment() -> DistContext:
    """The context torchrun set up, or the single-process one when not launched by torchrun."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    except ValueError as err:
        raise ConfigError(f"bad torchrun environment (WORLD_SIZE/RANK/LOCAL_RANK/LOCAL_WORLD_SIZE): {err}") from None
    if world < 1 or not 0 <= rank < world:
        raise ConfigError(f"bad torchrun environment: RANK={rank}, WORLD_SIZE={world}")
    return DistContext(rank=rank, local_rank=local, world_size=world, local_world_size=max(1, local_world))


def init(ctx: DistContext, device):
    """Join the process group (NCCL on CUDA, gloo on CPU); returns the device this rank trains on."""
    import torch
    import torch.distributed as dist

    if not ctx.enabled:
        return device
    if device.type == "cuda":
        if torch.cuda.device_count() <= ctx.local_rank:
            raise ConfigError(
                f"local rank {ctx.local_rank} has no GPU: this machine shows {torch.cuda.device_count()}; "
                "start at most that many processes per node (--nproc-per-node)"
            )
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=ctx.rank, world_size=ctx.world_size,
                                device_id=device if backend == "nccl" else None)
    return device


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        import torch.distributed as dist

        dist.barrier()


def mean_over_ranks(ctx: DistContext, values: dict[str, float], device) -> dict[str, float]:
    """``values`` averaged over every process (each rank's are from its slice of the global
    batch); unchanged in single-process training. Every rank must call it."""
    if not ctx.enabled:
        return values
    import torch
    import torch.distributed as dist

    names = sorted(values)
    stacked = torch.tensor([float(values[n]) for n in names], dtype=torch.float64, device=device)
    dist.all_reduce(stacked)
    return {n: float(v) / ctx.world_size for n, v in zip(names, stacked.tolist(), strict=True)}


def shutdown(ctx: DistContext) -> None:
    if ctx.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def torchrun_argv(nproc: int, train_args: list[str], *, nnodes: int = 1, node_rank: int = 0,
                  master: str | None = None) -> list[str]:
    """The torchrun command that runs ``python -m edgeact.training TRAIN_ARGS`` on ``nproc`` processes per node.

    One node: torchrun picks a free local port (``--standalone``). Several nodes: every node
    runs the same command with its own ``node_rank``; ``master`` is node 0's HOST:PORT.
    """
    if nproc < 1 or nnodes < 1:
        raise ConfigError(f"--nproc and --nnodes must be at least 1 (got {nproc}, {nnodes})")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc)]
    if nnodes == 1:
        cmd.append("--standalone")
    else:
        host, _, port = (master or "").rpartition(":")
        if not host or not port.isdigit() or not 0 <= node_rank < nnodes:
            raise ConfigError(f"several nodes need --node-rank in [0, {nnodes}) and --master HOST:PORT (node 0's "
                              f"address and a free port on it), got --node-rank {node_rank} --master {master}")
        cmd += ["--nnodes", str(nnodes), "--node-rank", str(node_rank), "--master-addr", host, "--master-port", port]
    return [*cmd, "-m", "edgeact.training", *train_args]
