"""ResNet feature extractor with torchvision's parameter names and frozen batch norm.

Our own code (no torchvision dependency), laid out so that ``state_dict()`` keys are
torchvision's (``conv1``, ``bn1.*``, ``layer1.0.conv1``, ``layer1.0.downsample.0`` ...)
minus ``fc`` and ``num_batches_tracked``, exactly as LeRobot's ``IntermediateLayerGetter``
over a torchvision ResNet with ``FrozenBatchNorm2d`` saves them.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from edgeact.errors import CheckpointError, ConfigError

# oneDNN's channels-last convolutions lose to NCHW on the smallest maps: bf16, 512 channels, 3x3
# kernel, forward + backward of a batch of 16 on 2 Zen 5 cores took 5.9 ms NHWC vs 4.2 ms NCHW on a
# 3x4 map, and the same on 6x8 and larger. A stage whose output map has fewer positions than this
# keeps the NCHW layout when training on the CPU.
NHWC_MIN_POSITIONS = 32

STAGES = ("layer1", "layer2", "layer3", "layer4")
# name -> (block kind, blocks per stage)
RESNET_LAYOUTS: dict[str, tuple[str, tuple[int, int, int, int]]] = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
}


class FrozenBatchNorm2d(nn.Module):
    """Batch norm with fixed statistics and affine parameters, all buffers (never trained).

    It has no forward of its own: :func:`conv_bn` applies it inside the convolution before it.
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # torchvision checkpoints carry this counter; a frozen norm has no use for it.
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def scale_shift(self) -> tuple[Tensor, Tensor]:
        """Per-channel ``(scale, shift)`` with ``bn(x) == x * scale + shift``."""
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        return scale, self.bias - self.running_mean * scale


def conv_bn(conv: nn.Conv2d, bn: FrozenBatchNorm2d, x: Tensor) -> Tensor:
    """``bn(conv(x))``, with the norm applied to the weights or to the output, whichever is smaller.

    The norm is frozen, so folding it into the convolution's weights and bias is exact up to
    float rounding. In training it costs a pass over the weights (forward and backward) instead
    of one over the output: cheaper in the early stages, where outputs are large and weights
    small, dearer in the last ones, where a 512x512x3x3 kernel meets a 3x4 map. The sizes are
    compared per output channel and per sample (kernel weights vs output positions). In eval mode
    (inference, export) it always folds: the graph is the Conv-with-bias every exporter,
    quantizer and accelerator expects.
    """
    scale, shift = bn.scale_shift()
    # per sample, not per batch: a batch split over DDP processes takes the same path as the whole batch
    if conv.training and conv.weight[0].numel() > _map_positions(x.shape[2:], conv.stride[0]):
        y = conv(x)  # in the dtype autocast chose: a float32 scale would promote every activation
        return y * scale.to(y.dtype).reshape(1, -1, 1, 1) + shift.to(y.dtype).reshape(1, -1, 1, 1)
    weight = conv.weight * scale.reshape(-1, 1, 1, 1)
    return F.conv2d(x, weight, shift, conv.stride, conv.padding, conv.dilation, conv.groups)


def _map_positions(size: tuple[int, ...], stride: int) -> int:
    """Positions (height x width) of the map that a ``stride`` padded as ResNet pads makes of ``size``."""
    return -(-size[0] // stride) * -(-size[1] // stride)


def _conv3x3(c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


def _conv1x1(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, c_in: int, width: int, stride: int, dilation: int, downsample: nn.Module | None):
        super().__init__()
        self.conv1 = _conv3x3(c_in, width, stride)
        self.bn1 = FrozenBatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(width, width)
        self.bn2 = FrozenBatchNorm2d(width)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else conv_bn(self.downsample[0], self.downsample[1], x)
        out = self.relu(conv_bn(self.conv1, self.bn1, x))
        out = conv_bn(self.conv2, self.bn2, out)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int, dilation: int, downsample: nn.Module | None):
        super().__init__()
        self.conv1 = _conv1x1(c_in, width)
        self.bn1 = FrozenBatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride, dilation)
        self.bn2 = FrozenBatchNorm2d(width)
        self.conv3 = _conv1x1(width, width * self.expansion)
        self.bn3 = FrozenBatchNorm2d(width * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else conv_bn(self.downsample[0], self.downsample[1], x)
        out = self.relu(conv_bn(self.conv1, self.bn1, x))
        out = self.relu(conv_bn(self.conv2, self.bn2, out))
        out = conv_bn(self.conv3, self.bn3, out)
        return self.relu(out + identity)


class ResNetBackbone(nn.Module):
    """ResNet stem and four stages; returns the layer4 feature map (B, out_channels, H/32, W/32)."""

    def __init__(self, name: str = "resnet18", dilate_final_stage: bool = False) -> None:
        super().__init__()
        if name not in RESNET_LAYOUTS:
            raise ConfigError(f"unknown vision_backbone {name!r}; use one of {sorted(RESNET_LAYOUTS)}")
        kind, blocks = RESNET_LAYOUTS[name]
        block = BasicBlock if kind == "basic" else Bottleneck
        if dilate_final_stage and block is BasicBlock:
            # Same limit as torchvision: a 3x3 basic block has no dilated variant.
            raise ConfigError(
                f"replace_final_stride_with_dilation is not supported with {name}; use resnet50 or set it false"
            )
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = FrozenBatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self._c_in, self._dilation = 64, 1
        self.layer1 = self._make_stage(block, 64, blocks[0], stride=1)
        self.layer2 = self._make_stage(block, 128, blocks[1], stride=2)
        self.layer3 = self._make_stage(block, 256, blocks[2], stride=2)
        self.layer4 = self._make_stage(block, 512, blocks[3], stride=2, dilate=dilate_final_stage)
        self.out_channels = 512 * block.expansion
        self._nchw_stages: frozenset[str] = frozenset()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_stage(self, block: type, width: int, n: int, stride: int, dilate: bool = False) -> nn.Sequential:
        previous_dilation = self._dilation
        if dilate:
            self._dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self._c_in != width * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(self._c_in, width * block.expansion, stride), FrozenBatchNorm2d(width * block.expansion)
            )
        layers = [block(self._c_in, width, stride, previous_dilation, downsample)]
        self._c_in = width * block.expansion
        layers += [block(self._c_in, width, 1, self._dilation, None) for _ in range(1, n)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(conv_bn(self.conv1, self.bn1, x)))
        for name in STAGES:
            if name in self._nchw_stages:
                x = x.contiguous()  # this stage's weights are NCHW (see use_channels_last)
            x = getattr(self, name)(x)
        return x

    def use_channels_last(self, image_size: tuple[int, int], device_type: str) -> None:
        """Lay the weights out channels-last (NHWC) for training on ``device_type``.

        oneDNN (CPU) and cuDNN convolutions run NHWC natively, so a channels-last input skips a
        layout reorder around every convolution. On the CPU the stages whose output maps are
        smaller than :data:`NHWC_MIN_POSITIONS` for ``image_size`` stay NCHW, weights and
        activations, because there NCHW is faster. Values and the state dict are unchanged.
        """
        self.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # missing from torch's stubs
        if device_type != "cpu":
            return
        stride, small = 4, set()  # the stem (7x7 conv and max pool) divides the image by 4
        for name in STAGES:
            first = getattr(self, name)[0]
            if first.downsample is not None:
                stride *= first.downsample[0].stride[0]
            if _map_positions(image_size, stride) < NHWC_MIN_POSITIONS:
                small.add(name)
                getattr(self, name).to(memory_format=torch.contiguous_format)
        self._nchw_stages = frozenset(small)

    def load_pretrained(self, path: str | Path) -> None:
        """Load ImageNet weights from a torchvision ResNet state-dict file the user supplies."""
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(
                f"backbone weights file not found: {path} (save torchvision's resnet state_dict there, "
                "or pass no weights to train the backbone from scratch)"
            )
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise CheckpointError(
                f"{path} does not fit this backbone: missing {missing[:5]}, unexpected {unexpected[:5]}"
            )
