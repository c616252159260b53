"""Training an ACT policy as LeRobot does, on CPU or CUDA, on one process or many.

- ``loop``: the training run (``train(TrainConfig)``): LeRobot's loss and optimizer, its outputs
- ``presets``: ``tiny`` and ``rover``, the model each builds and its training defaults
- ``batches``: the global batch sampler every process shares, and a prefetch thread
- ``distributed``: torchrun's environment, the process group (NCCL on CUDA, gloo on CPU)
- ``benchmark``: ``edgeact bench --training``, steps/s of the step with each speed-up in turn

``python -m edgeact.training ARGS`` is ``edgeact train ARGS`` (what torchrun starts).
"""
