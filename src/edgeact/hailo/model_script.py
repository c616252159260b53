"""The model script (``.alls``) handed to the Dataflow Compiler's optimizer, per precision.

Syntax as in Hailo's model zoo v2.18 (``hailo_model_zoo/cfg/alls/generic/*.alls``):
``normalization``, ``model_optimization_flavor``, ``model_optimization_config(calibration, ...)``,
``pre_quantization_optimization(equalization, ...)``, ``quantization_param(..., precision_mode=...)``.

Choices, and why:
- ``normalization([mean], [std])`` in 0–255 units: the chip takes raw pixels (uint8 NHWC).
- ``compression_level=0``: higher levels move weights to 4 bits (the model zoo's default 2),
  which a control policy cannot afford.
- ``equalization`` on: Hailo's weights are quantized per tensor (one scale per layer, see
  :mod:`edgeact.hailo.emulate`); equalization balances the channels' ranges first.
- ``a8_w8``: every layer 8-bit, outputs included (the DFC's default).
- ``a16_w16``: 16-bit activations and weights on every conv and elementwise add, as the public
  LeRobot/Hailo experiment that drove at fp32's success rate did; outputs 16-bit (as DETR's
  script keeps its head).
- ``mixed``: the layers the emulation finds sensitive in 16-bit, the rest 8-bit; outputs 16-bit.

Layer names: the DFC names a network's layers ``<net>/conv1``, ``<net>/conv2``, … in graph
order (HAILO-FACTS, model zoo scripts); :func:`hailo_layer_names` maps our ONNX nodes to those
names on that assumption, and the compile driver checks them against the parsed network.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeact.backends.hailo_part import NET_NAME, PRECISIONS
from edgeact.errors import ConfigError

# ONNX op -> the DFC's layer-name stem (assumed from the model zoo's scripts: conv, ew_add, ew_sub, fc, matmul)
LAYER_STEMS = {"Conv": "conv", "Add": "ew_add", "Gemm": "fc"}


@dataclass
class ModelScript:
    precision: str
    mean: list[float]
    std: list[float]
    calib_frames: int
    optimization_level: int = 2
    sixteen_bit_layers: list[str] = field(default_factory=list)  # DFC layer names (mixed)
    net_name: str = NET_NAME

    def text(self) -> str:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; use one of {', '.join(PRECISIONS)}")
        mean = ", ".join(f"{m:.6g}" for m in self.mean)
        std = ", ".join(f"{s:.6g}" for s in self.std)
        lines = [
            f"# edgeact model script: precision {self.precision}",
            f"normalization1 = normalization([{mean}], [{std}])",
            f"model_optimization_flavor(optimization_level={self.optimization_level}, compression_level=0)",
            f"model_optimization_config(calibration, batch_size=8, calibset_size={self.calib_frames})",
            "pre_quantization_optimization(equalization, policy=enabled)",
        ]
        if self.precision == "a16_w16":
            lines += [
                "quantization_param({conv*}, precision_mode=a16_w16)",
                "quantization_param({ew_add*}, precision_mode=a16_w16)",
            ]
        elif self.precision == "mixed" and self.sixteen_bit_layers:
            names = ", ".join(self.sixteen_bit_layers)
            lines.append(f"quantization_param([{names}], precision_mode=a16_w16)")
        if self.precision != "a8_w8":  # a8_w8 means every layer, outputs included
            lines.append("quantization_param({output_layer*}, precision_mode=a16_w16)")
        return "\n".join(lines) + "\n"


def hailo_layer_names(model, net_name: str = NET_NAME) -> dict[str, str]:
    """ONNX node name -> assumed DFC layer name (``<net>/conv3``) for the ops the DFC numbers."""
    counters: dict[str, int] = {}
    names = {}
    for node in model.graph.node:
        stem = LAYER_STEMS.get(node.op_type)
        if stem is None:
            continue
        counters[stem] = counters.get(stem, 0) + 1
        names[node.name] = f"{net_name}/{stem}{counters[stem]}"
    return names
