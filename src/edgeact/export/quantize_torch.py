"""PyTorch int8 on the CPU (the users' guide's "Path 1") -> ``model.int8.torchscript.pt``.

What torch 2.13 offers, and what we use:

- PT2E export quantization (``prepare_pt2e``/``convert_pt2e`` with X86InductorQuantizer or
  XNNPACKQuantizer) left ``torch.ao`` for ``torchao``. Its converted program holds
  quantize/dequantize around fp32 ops; it is only fast once lowered, by Inductor
  (``torch.compile``: x86 only, needs a C++ toolchain at run time) or by ExecuTorch (XNNPACK,
  not PyTorch). Neither gives an int8 model the Pi's ``torch`` can load and run fast.
- Dynamic int8 ``Linear`` alone leaves the ResNet (62% of the FLOPs) in fp32.
- Eager-mode static quantization (``torch.ao.quantization`` prepare/convert; deprecated in
  favour of torchao but still shipped) runs on PyTorch's own int8 kernels: FBGEMM/oneDNN
  (``x86`` engine) and QNNPACK (ARM). That is what we use:

  * the ResNet backbone, with each frozen batch norm folded into its conv and ReLUs fused,
    runs as static int8 (per-channel symmetric int8 weights, uint8 activations calibrated
    with a histogram observer on real frames); residual adds are ``add_relu`` in int8;
  * every ``Linear`` of the transformer (the attention projections split into q/k/v
    ``Linear`` modules, the feed-forward layers, the heads) is dynamic int8 with per-channel
    weights: activations are quantized per call from their actual range, so no calibration
    error; attention softmax, layer norms, and the small 1x1 input projection stay fp32.

The model is traced to TorchScript and saved in the bundle: the Pi loads it with
``torch.jit.load`` and needs neither edgeact's model code nor the training code. Packed weights
are stored unpacked and re-packed at load for the engine of the machine (QNNPACK on ARM), so the
file is portable; the target only chooses ``reduce_range`` (7-bit activations on x86, which
avoid int16 overflow in FBGEMM's non-VNNI kernels; full 8-bit on the Pi).
"""

from __future__ import annotations

import copy
import io
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeact.bundle import TORCH_INT8_NAME, read_manifest, write_manifest
from edgeact.cpu import host_engine
from edgeact.export.accuracy import ActionError, compare
from edgeact.export.calibration import observations_for
from edgeact.export.quantize_onnx import resolve_target


def _modules():
    import torch
    import torch.nn.functional as F
    from torch import nn
    from torch.ao import quantization as tq
    from torch.ao.nn import intrinsic as nni
    from torch.ao.nn.quantized import FloatFunctional

    def fold(conv: nn.Conv2d, bn) -> nn.Conv2d:
        """Conv followed by a frozen batch norm -> one Conv2d with bias."""
        scale, shift = bn.scale_shift()
        out = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                        conv.dilation, conv.groups, bias=True)
        with torch.no_grad():
            out.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
            out.bias.copy_(shift if conv.bias is None else conv.bias * scale + shift)
        return out

    class QuantBlock(nn.Module):
        """BasicBlock / Bottleneck with folded BN, fused ReLU and an int8 add+relu."""

        def __init__(self, block) -> None:
            super().__init__()
            convs = [("conv1", "bn1"), ("conv2", "bn2")] + ([("conv3", "bn3")] if hasattr(block, "conv3") else [])
            layers = []
            for i, (c, b) in enumerate(convs):
                conv = fold(getattr(block, c), getattr(block, b))
                layers.append(nni.ConvReLU2d(conv, nn.ReLU()) if i < len(convs) - 1 else conv)
            self.body = nn.Sequential(*layers)
            ds = block.downsample
            self.downsample = fold(ds[0], ds[1]) if ds is not None else None
            self.add = FloatFunctional()

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            return self.add.add_relu(self.body(x), identity)

    class QuantBackbone(nn.Module):
        """ResNet stem + stages as static int8; float in, float out."""

        def __init__(self, backbone) -> None:
            super().__init__()
            self.quant = tq.QuantStub()
            self.stem = nni.ConvReLU2d(fold(backbone.conv1, backbone.bn1), nn.ReLU())
            self.maxpool = backbone.maxpool
            self.blocks = nn.Sequential(
                *[QuantBlock(b) for stage in (backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4)
                  for b in stage]
            )
            self.dequant = tq.DeQuantStub()
            self.out_channels = backbone.out_channels

        def forward(self, x):
            return self.dequant(self.blocks(self.maxpool(self.stem(self.quant(x)))))

    class LinearAttention(nn.Module):
        """The same attention with q/k/v as nn.Linear modules, so dynamic int8 Linear applies."""

        def __init__(self, attn) -> None:
            super().__init__()
            self.dim, self.n_heads = attn.dim, attn.n_heads
            self.q_proj, self.k_proj, self.v_proj = (nn.Linear(self.dim, self.dim) for _ in range(3))
            with torch.no_grad():
                for proj, w, b in zip((self.q_proj, self.k_proj, self.v_proj), attn.in_proj_weight.chunk(3),
                                      attn.in_proj_bias.chunk(3)):
                    proj.weight.copy_(w)
                    proj.bias.copy_(b)
            self.out_proj = attn.out_proj

        def _heads(self, x):
            length, batch = x.shape[0], x.shape[1]
            return x.reshape(length, batch, self.n_heads, self.dim // self.n_heads).permute(1, 2, 0, 3)

        def forward(self, query, key, value, key_padding_mask=None):
            mask = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
            out = F.scaled_dot_product_attention(self._heads(self.q_proj(query)), self._heads(self.k_proj(key)),
                                                 self._heads(self.v_proj(value)), attn_mask=mask)
            length, batch = query.shape[0], query.shape[1]
            return self.out_proj(out.permute(2, 0, 1, 3).reshape(length, batch, self.dim))

    return QuantBackbone, LinearAttention


def build_int8_model(model, calibration, target: str = "pi5", observer: str = "histogram",
                     log: Callable[[str], None] = print):
    """An int8 copy of an InferenceModel (eager; trace it to save). ``calibration``: Observations."""
    import torch
    from torch import nn
    from torch.ao import quantization as tq

    from edgeact.model.transformer import MultiheadAttention

    QuantBackbone, LinearAttention = _modules()
    engine = host_engine()
    torch.backends.quantized.engine = engine
    reduce_range = target == "x86"
    act_observer = (tq.HistogramObserver if observer == "histogram" else tq.MinMaxObserver).with_args(
        dtype=torch.quint8, reduce_range=reduce_range)
    qconfig = tq.QConfig(activation=act_observer, weight=tq.default_per_channel_weight_observer)

    qmodel = copy.deepcopy(model).eval()
    act = qmodel.policy.model
    for name in [n for n, _ in act.named_children()] + [n for n, _ in act.named_buffers(recurse=False)]:
        if name.startswith("vae_encoder"):  # the CVAE encoder is training-only; keep it out of the file
            delattr(act, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao eager quantization is deprecated in favour of torchao
        backbone = QuantBackbone(act.backbone).eval()
        backbone.qconfig = qconfig
        tq.prepare(backbone, inplace=True)
        act.backbone = backbone
        for parent in list(qmodel.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, MultiheadAttention):
                    setattr(parent, name, LinearAttention(child))
        t0 = time.perf_counter()
        with torch.inference_mode():
            for frames, state in calibration:
                inputs = [torch.from_numpy(np.ascontiguousarray(f))[None] for f in frames]
                if state.size:
                    inputs.append(torch.from_numpy(np.asarray(state, np.float32))[None])
                qmodel(*inputs)
        log(f"  calibrated the backbone on {len(calibration)} frames in {time.perf_counter() - t0:.1f} s")
        tq.convert(backbone, inplace=True)
        qmodel = tq.quantize_dynamic(qmodel, {nn.Linear: tq.per_channel_dynamic_qconfig}, dtype=torch.qint8)
    return qmodel.eval(), engine


def trace_and_save_bytes(qmodel, spec, extra: dict) -> bytes:
    import torch

    from edgeact.export.onnx_export import example_inputs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.inference_mode():
            traced = torch.jit.trace(qmodel, example_inputs(spec), check_trace=False)
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer, _extra_files={"edgeact.json": json.dumps(extra)})
    return buffer.getvalue()


@dataclass
class TorchQuantizeResult:
    path: Path
    target: str
    engine: str
    accuracy: ActionError
    calibration_frames: int
    calibration_source: str
    seconds: float
    entry: dict = field(repr=False, default_factory=dict)


def quantize_torch_bundle(
    bundle: str | Path,
    calib: str | Path | None = None,
    *,
    frames: int = 32,
    heldout: int = 32,
    target: str = "pi5",
    observer: str = "histogram",
    log: Callable[[str], None] = print,
) -> TorchQuantizeResult:
    """Build the torch-int8 model of a bundle, check it on held-out frames, save it, update the manifest."""
    import torch

    from edgeact.bundle import spec_from_manifest
    from edgeact.checkpoint import build_policy, load_checkpoint
    from edgeact.fileio import atomic_write_bytes
    from edgeact.model.inference import InferenceModel

    start = time.perf_counter()
    bundle = Path(bundle)
    target = resolve_target(target)
    manifest = read_manifest(bundle)
    spec = spec_from_manifest(manifest)
    checkpoint = load_checkpoint(bundle)
    model = InferenceModel(build_policy(checkpoint), checkpoint.stats).eval()
    calib_obs, held_obs = observations_for(spec, calib, frames, heldout, checkpoint.stats.get("observation.state"))
    log(f"torch int8 for {target}: static int8 ResNet + dynamic int8 Linear; calibrating on "
        f"{len(calib_obs)} {calib_obs.source}")
    qmodel, engine = build_int8_model(model, calib_obs, target, observer, log)
    extra = {"target": target, "engine_at_export": engine, "torch_version": torch.__version__,
             "inputs": manifest["inputs"], "outputs": manifest["outputs"]}
    data = trace_and_save_bytes(qmodel, spec, extra)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        loaded = torch.jit.load(io.BytesIO(data), map_location="cpu").eval()  # check what the Pi will load

    def run(module):
        def fn(frames_, state_):
            inputs = [torch.from_numpy(np.ascontiguousarray(f))[None] for f in frames_]
            if spec.state_dim:
                inputs.append(torch.from_numpy(np.asarray(state_, np.float32))[None])
            with torch.inference_mode():
                return module(*inputs)[0].numpy()
        return fn

    accuracy = compare(run(model), run(loaded), held_obs, manifest["policy"])
    log("  " + accuracy.format())
    out = bundle / TORCH_INT8_NAME
    atomic_write_bytes(out, data)
    out.chmod(0o644)
    entry = {
        "file": TORCH_INT8_NAME,
        "precision": "int8",
        "format": "torchscript",
        "target": target,
        "scheme": "static int8 ResNet (per-channel s8 weights, u8 activations"
                  + (", reduce_range" if target == "x86" else "") + ") + dynamic int8 Linear (per-channel)",
        "engine_at_export": engine,
        "calibration": {"observer": observer, "frames": len(calib_obs), "source": calib_obs.source},
        "accuracy": accuracy.to_json(),
        "torch_version": torch.__version__,
    }
    manifest["models"]["torch-int8"] = entry
    write_manifest(bundle, manifest)
    seconds = time.perf_counter() - start
    log(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) in {seconds:.0f} s")
    return TorchQuantizeResult(out, target, engine, accuracy, len(calib_obs), calib_obs.source, seconds, entry)
