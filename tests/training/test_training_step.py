"""The training step: losses left on the device, the precision choice, the parts a GPU run relies on."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from edgeact.data.dataset import EpisodeDataset, ImageAugment
from edgeact.data.episodes import load_episodes
from edgeact.data.frame_cache import build_cache
from edgeact.data.stats import compute_stats
from edgeact.errors import ConfigError
from edgeact.model.act import ACTPolicy
from edgeact.normalization import make_normalizers
from edgeact.sim.record import record_episodes
from edgeact.training.pipeline import CachedFrames, TrainBatches
from edgeact.training.presets import model_config
from edgeact.training.sampler import GlobalBatchSampler
from edgeact.training.step import (
    LossModel,
    TrainStep,
    eager_precision,
    make_optimizer,
    measure_precisions,
    precision_candidates,
    use_cuda_graph,
)

SMALL = {"dim_model": 32, "n_heads": 4, "dim_feedforward": 64, "n_encoder_layers": 1, "n_vae_encoder_layers": 1,
         "latent_dim": 8, "chunk_size": 8, "n_action_steps": 8}
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("episodes")
    record_episodes(root, 2, image_size=(96, 128), seconds=1.0, seed=2)
    episodes = load_episodes(root)
    config = model_config("tiny", (96, 128), 2, 2, False, SMALL)
    dataset = EpisodeDataset(episodes, config.chunk_size, image_size=(96, 128), flip=True)
    cache = build_cache(episodes, (96, 128), tmp_path_factory.mktemp("cache"))
    batches = TrainBatches(dataset, GlobalBatchSampler(len(dataset), 4, seed=0), CPU,
                           frames=CachedFrames(cache, np.arange(len(dataset))), seed=0, augment=True)
    torch.manual_seed(0)
    policy = ACTPolicy(config)
    return policy, make_normalizers(config, compute_stats(episodes)), batches


def make_step(policy, normalizers, autocast=None):
    optimizer = make_optimizer(policy, 1e-3, 1e-4, CPU)
    return TrainStep(LossModel(policy), normalizers, optimizer, grad_clip_norm=10.0, state_noise=0.5,
                     autocast=autocast, augment=ImageAugment())


def test_a_step_trains_and_leaves_its_losses_as_tensors(setup):
    policy, normalizers, batches = setup
    policy = copy.deepcopy(policy)
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    logs = make_step(policy, normalizers)(next(batches))
    assert set(logs) == {"l1_loss", "kld_loss", "loss"}
    assert all(isinstance(v, torch.Tensor) and v.dim() == 0 and not v.requires_grad for v in logs.values())
    assert float(logs["loss"]) == pytest.approx(float(logs["l1_loss"]) + 10.0 * float(logs["kld_loss"]), rel=1e-5)
    changed = [k for k, v in policy.state_dict().items() if not torch.equal(v, before[k])]
    assert len(changed) > 10


def test_measuring_precisions_times_each_on_a_copy_and_leaves_the_model_alone(setup):
    policy, normalizers, batches = setup
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    batch = batches.batch_at(0)
    made = []

    def twin_step(dtype):
        made.append(dtype)
        return make_step(copy.deepcopy(policy), normalizers, dtype)

    seconds = measure_precisions(twin_step, batch, [torch.bfloat16, None], steps=1)
    assert made == [torch.bfloat16, None] and set(seconds) == {"bf16", "fp32"}
    assert all(s > 0 for s in seconds.values())
    assert all(torch.equal(v, before[k]) for k, v in policy.state_dict().items())


def test_precision_choices():
    assert precision_candidates("fp32", CPU) == [None]
    with pytest.raises(ConfigError, match="unknown precision"):
        precision_candidates("fp16", CPU)
    auto = precision_candidates("auto", CPU)
    assert auto in ([torch.bfloat16, None], [None])  # bf16 first only where the CPU computes it natively
    # without a measurement (DDP on GPUs): bf16 from a batch of 32 per process, as the H200's eager steps say
    cuda = torch.device("cuda")
    assert eager_precision([torch.bfloat16, None], cuda, 8) is None
    assert eager_precision([torch.bfloat16, None], cuda, 64) is torch.bfloat16
    assert eager_precision([torch.bfloat16, None], CPU, 8) is torch.bfloat16
    assert not use_cuda_graph(CPU, 1) and not use_cuda_graph(cuda, 2) and use_cuda_graph(cuda, 1)
