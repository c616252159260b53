"""Training an ACT policy as LeRobot does, on CPU or CUDA, on one process or many.

Modules, each importing only from those listed after it:

- ``loop``: the run (``train(TrainConfig)``): data, model, precision, the loop, validation
- ``benchmark``: ``edgeact bench --training``, the step with each speed-up in turn
- ``loader_bench``: ``edgeact bench --loader``, where a batch's time goes
- ``step``: one step (LeRobot's loss, backward, clipping, AdamW), eager or as a CUDA graph
- ``pipeline``: batches from the decoded-frame cache, pinned copies, augmentation on the device
- ``sampler``: the global batch order every process shares
- ``distributed``: torchrun's environment, the process group (NCCL on CUDA, gloo on CPU)
- ``presets``: ``tiny`` and ``rover``, the model each builds and its training defaults
- ``outputs``: checkpoints, the state to resume from, the log and the loss plot

``python -m edgeact.training ARGS`` is ``edgeact train ARGS`` (what torchrun starts).
"""
