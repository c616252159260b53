"""Model size and compute: parameter counts and FLOPs per inference."""

from __future__ import annotations

import torch

from edgeact.model.act import ACTPolicy

TRAINING_ONLY_PREFIXES = ("model.vae_encoder",)


def count_params(policy: ACTPolicy) -> tuple[int, int]:
    """(all parameters, those inference uses: without the training-only CVAE encoder)."""
    total = inference = 0
    for name, p in policy.named_parameters():
        total += p.numel()
        if not name.startswith(TRAINING_ONLY_PREFIXES):
            inference += p.numel()
    return total, inference


def count_gflops(model: torch.nn.Module, inputs: list[torch.Tensor]) -> float:
    """GFLOPs of one forward pass (a multiply-add counts 2), counted by PyTorch's dispatcher
    (matmuls and convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(*inputs)
    return counter.get_total_flops() / 1e9


def dummy_inputs(policy: ACTPolicy) -> list[torch.Tensor]:
    """Zero frames and state shaped as the model's inputs (batch 1)."""
    config = policy.config
    h, w = config.image_size
    inputs = [torch.zeros(1, h, w, 3, dtype=torch.uint8) for _ in config.image_features]
    if config.state_dim:
        inputs.append(torch.zeros(1, config.state_dim))
    if config.env_state_feature:
        inputs.append(torch.zeros(1, config.env_state_feature.shape[0]))
    return inputs
