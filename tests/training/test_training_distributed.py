"""DDP training with torchrun and gloo on CPU: the same weights as one process, one set of outputs."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from edgeact.cli import build_parser
from edgeact.commands.train import _train_args
from edgeact.errors import ConfigError
from edgeact.sim.record import record_episodes
from edgeact.training.distributed import DistContext, from_environment, torchrun_argv
from edgeact.training.loop import TrainConfig, train

# No randomness inside a step (no VAE sampling, dropout, state noise, augmentation, flips),
# so N processes on slices of a global batch must compute what one process does on all of it.
DETERMINISTIC = dict(batch_size=4, eval_every=3, augment=False, flip=False, state_noise=0.0, precision="fp32",
                     overrides={"dim_model": 32, "n_heads": 4, "dim_feedforward": 64, "n_encoder_layers": 1,
                                "latent_dim": 8, "chunk_size": 8, "n_action_steps": 8, "use_vae": False,
                                "dropout": 0.0})


@pytest.fixture(scope="module")
def episodes(tmp_path_factory):
    root = tmp_path_factory.mktemp("episodes")
    record_episodes(root, 3, image_size=(96, 128), seconds=1.0, seed=5)
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_torchrun(nproc: int, data, out, steps: int, resume: bool = False) -> None:
    script = out.parent / f"{out.name}_train.py"
    script.write_text(textwrap.dedent(f"""
        from pathlib import Path
        from edgeact.training.loop import TrainConfig, train
        train(TrainConfig(data=Path({str(data)!r}), out=Path({str(out)!r}), steps={steps}, resume={resume},
                          **{DETERMINISTIC!r}), progress=print)
    """))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--master-addr",
           "127.0.0.1", "--master-port", str(_free_port()), str(script)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def weights(out):
    return load_file(str(out / "last" / "model.safetensors"))


def assert_same_weights(a, b):
    # Adam divides by sqrt(v): where a gradient is ~0, float rounding (another batch split,
    # another kernel blocking) picks the sign of a whole lr-sized step, so a few weights may
    # differ by up to a step. A real error (other samples, no gradient sync) moves most weights
    # by that much (7.6 M of 11.2 M weights when a rank trains on half the batch). How many flip
    # depends on the CPU's kernels: 233 of 11.2 M with AVX512 (Zen 5), 4,011 with AVX2 (Zen 3).
    # Allowed: 1 weight in 1,000 off by more than a tenth of the smallest step.
    assert a.keys() == b.keys()
    diff = torch.cat([(a[k] - b[k]).abs().flatten() for k in a])
    outliers = int((diff > 1e-5).sum())
    assert outliers <= diff.numel() * 1e-3, f"{outliers} of {diff.numel()} weights differ by more than 1e-5"
    assert float(diff.max()) < 1e-3, f"weights differ by up to {float(diff.max())}"


@pytest.mark.slow
def test_two_gloo_processes_train_like_one_on_the_same_global_batch(episodes, tmp_path):
    train(TrainConfig(data=episodes, out=tmp_path / "one", steps=3, **DETERMINISTIC), progress=lambda _: None)
    run_torchrun(2, episodes, tmp_path / "two", steps=3)
    assert_same_weights(weights(tmp_path / "one"), weights(tmp_path / "two"))
    # rank 0 alone writes: one log line per validation, one set of checkpoints, nothing else
    out = tmp_path / "two"
    assert sorted(p.name for p in out.iterdir()) == ["best", "last", "log.jsonl", "loss.png", "training_state.pt"]
    assert [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()] == [3]
    # the logged training loss is the global batch's (both ranks' halves), not rank 0's half
    one, two = (json.loads((tmp_path / name / "log.jsonl").read_text()) for name in ("one", "two"))
    assert two["l1_loss"] == pytest.approx(one["l1_loss"], rel=1e-4)
    # and it did change the weights: the comparison is not between two untouched models
    init = tmp_path / "init"
    train(TrainConfig(data=episodes, out=init, steps=3, **{**DETERMINISTIC, "overrides": {
        **DETERMINISTIC["overrides"], "optimizer_lr": 0.0, "optimizer_lr_backbone": 0.0}}), progress=lambda _: None)
    moved = max(float((weights(init)[k] - weights(out)[k]).abs().max()) for k in weights(out))
    assert moved > 5e-4


@pytest.mark.slow
def test_a_two_process_run_resumes_in_one_process(episodes, tmp_path):
    run_torchrun(2, episodes, tmp_path / "run", steps=3)
    result = train(TrainConfig(data=episodes, out=tmp_path / "run", steps=6, resume=True, **DETERMINISTIC),
                   progress=lambda _: None)
    assert result.steps == 6
    train(TrainConfig(data=episodes, out=tmp_path / "straight", steps=6, **DETERMINISTIC), progress=lambda _: None)
    assert_same_weights(weights(tmp_path / "straight"), weights(tmp_path / "run"))
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert steps == [3, 6]


def test_context_comes_from_torchrun_environment(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert from_environment() == DistContext()
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    ctx = from_environment()
    assert ctx.enabled and not ctx.is_main and ctx.world_size == 4
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ConfigError, match="RANK=4"):
        from_environment()


def test_nproc_launches_torchrun_with_the_same_training_options():
    args = build_parser().parse_args(["train", "--data", "d", "--out", "o", "--steps", "10", "--nproc", "2",
                                      "--no-flip", "--batch-size", "8"])
    cmd = torchrun_argv(args.nproc, _train_args(args))
    assert cmd[1:6] == ["-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone"]
    child = build_parser().parse_args(["train", *cmd[cmd.index("edgeact.training") + 1 :]])
    for name in ("data", "out", "steps", "flip", "batch_size", "preset", "precision", "seed"):
        assert getattr(child, name) == getattr(args, name), name
    assert child.nproc == 1  # the children train; they do not launch again
    multi = torchrun_argv(8, ["--data", "d"], nnodes=2, node_rank=1, master="10.0.0.1:29500")
    assert multi[multi.index("--master-addr") + 1] == "10.0.0.1" and "--standalone" not in multi
    with pytest.raises(ConfigError, match="--master HOST:PORT"):
        torchrun_argv(8, [], nnodes=2, node_rank=1)


def test_global_batch_must_split_over_processes(episodes, tmp_path, monkeypatch):
    from edgeact.training.sampler import GlobalBatchSampler

    with pytest.raises(ConfigError, match="multiple of 3"):
        GlobalBatchSampler(100, 8, rank=0, world_size=3)
    two = [GlobalBatchSampler(100, 8, rank=r, world_size=2, seed=1) for r in (0, 1)]
    one = GlobalBatchSampler(100, 8, seed=1)
    for step in (0, 5, 12, 13):  # across an epoch boundary (12 batches per epoch)
        assert two[0].indices(step) + two[1].indices(step) == one.indices(step)
    assert len(set(one.indices(0) + one.indices(1))) == 16
    assert torch.distributed.is_available()
