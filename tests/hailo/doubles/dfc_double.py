"""A double of ``hailo_sdk_client`` (Dataflow Compiler 3.x) that records what it is given, checks it
as the DFC would, and computes for real.

Signatures follow how Hailo's model zoo (v2.18) calls the DFC: ``ClientRunner(hw_arch=..., har=...)``,
``translate_onnx_model(model, net_name, start_node_names=, end_node_names=, net_input_shapes=)``,
``load_model_script(model_script, append=False)``, ``optimize(calib_data)``, ``compile()``,
``save_har(har_path)``, ``infer_context(target, device_info=None)``,
``infer(context, dataset, batch_size=None, data_count=None)``. Plain functions: an unknown
keyword or an extra positional raises TypeError.

Two majors, as ``make_module(version=...)``: DFC 3.x compiles for the Hailo-8 family, DFC 5.x for
the Hailo-10H (HAILO-FACTS: the two stacks; model zoo v2.x vs v5.x); the calls are the same.

Checks: the ONNX file loads; start/end node names exist in it; every start node reads only graph
inputs and constants (a start node fed by a tensor the parsed part computes would make that tensor
a second network input and cut the graph); net_input_shapes name its inputs
with their NCHW shapes; the model script's commands parse (known commands, 3-value
normalization, layer names of this network); the calibration is float32 NHWC at the input size,
keyed by ``<net>/input_layerK`` when there are several inputs, raw 0-255 when the script
normalizes. ``optimize`` runs the graph on the calibration set to get the output range, which
``compile`` stores in the HEF (fake_hef) with the stream formats the precision implies.
"""

from __future__ import annotations

import contextlib
import enum
import json
import re
import types
from pathlib import Path

import fake_hef
import numpy as np

VERSION = "3.33.1"
HW_ARCHS = {3: ("hailo8", "hailo8l", "hailo8r"), 5: ("hailo10h", "hailo15h", "hailo15l")}
COMMANDS = {
    "normalization",
    "model_optimization_flavor",
    "model_optimization_config",
    "pre_quantization_optimization",
    "post_quantization_optimization",
    "quantization_param",
    "performance_param",
    "resources_param",
}
STEMS = {"Conv": "conv", "Add": "ew_add", "Gemm": "fc"}


class InferenceContext(enum.Enum):
    SDK_NATIVE = "native"
    SDK_FP_OPTIMIZED = "fp_optimized"
    SDK_QUANTIZED = "quantized"
    SDK_HAILO_HW = "hw"


class DfcError(Exception):
    """What the real DFC raises would be one of its own types; the tests only need it to fail."""


def make_module(log: list | None = None, version: str = VERSION) -> types.ModuleType:
    """A fresh ``hailo_sdk_client`` module of DFC ``version``; every call on its runners is appended to ``log``."""
    calls = log if log is not None else []
    archs = HW_ARCHS[int(version.split(".")[0])]

    class ClientRunner:
        def __init__(self, hw_arch=None, har=None):
            if hw_arch not in archs:
                raise DfcError(f"hw_arch {hw_arch!r} is not supported by DFC {version} (it compiles for {archs})")
            self.hw_arch = hw_arch
            self.calls = calls
            self.calls.append(("ClientRunner", {"hw_arch": hw_arch, "har": har}))
            self._onnx = None
            self._script = ""
            self._calib = None
            self._output_range = None

        def translate_onnx_model(
            self,
            model,
            net_name=None,
            start_node_names=None,
            end_node_names=None,
            net_input_shapes=None,
            augmented_path=None,
            disable_shape_inference=False,
            disable_rt_metadata_extraction=False,
            net_input_format=None,
        ):
            import onnx

            proto = onnx.load(str(model))
            names = {n.name for n in proto.graph.node}
            for kind, given in (("start", start_node_names), ("end", end_node_names)):
                missing = [n for n in (given or []) if n not in names]
                if missing:
                    raise DfcError(f"{kind} node names {missing} not in the graph")
            inputs = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in proto.graph.input}
            constants = {i.name for i in proto.graph.initializer}
            constants |= {o for n in proto.graph.node if n.op_type == "Constant" for o in n.output}
            for node in (n for n in proto.graph.node if n.name in (start_node_names or [])):
                fed = [t for t in node.input if t and t not in inputs and t not in constants]
                if fed:
                    raise DfcError(
                        f"start node {node.name} reads {fed}, computed inside the parsed part: the parser would "
                        "make them network inputs and cut the graph there"
                    )
            for name, shape in (net_input_shapes or {}).items():
                if name not in inputs:
                    raise DfcError(f"net_input_shapes names {name!r}, the graph's inputs are {sorted(inputs)}")
                if list(shape) != inputs[name]:
                    raise DfcError(f"net_input_shapes {name}: {shape} != the graph's {inputs[name]}")
            self.net_name = net_name or Path(str(model)).stem
            self._onnx = proto
            self._inputs = [(v.name, inputs[v.name]) for v in proto.graph.input]
            self._layers = self._layer_names(proto)
            self.calls.append(
                (
                    "translate_onnx_model",
                    {
                        "model": str(model),
                        "net_name": net_name,
                        "start_node_names": start_node_names,
                        "end_node_names": end_node_names,
                        "net_input_shapes": net_input_shapes,
                    },
                )
            )
            return self.net_name

        def _layer_names(self, proto):
            counters, layers = {}, {}
            for node in proto.graph.node:
                stem = STEMS.get(node.op_type)
                if stem:
                    counters[stem] = counters.get(stem, 0) + 1
                    layers[f"{self.net_name}/{stem}{counters[stem]}"] = {"type": stem, "original_names": [node.name]}
            for i, _ in enumerate(proto.graph.input, start=1):
                layers[f"{self.net_name}/input_layer{i}"] = {"type": "input_layer"}
            for i, _ in enumerate(proto.graph.output, start=1):
                layers[f"{self.net_name}/output_layer{i}"] = {"type": "output_layer"}
            return layers

        def get_hn_dict(self):
            return {"name": self.net_name, "layers": dict(self._layers)}

        def load_model_script(self, model_script=None, append=False):
            if self._onnx is None:
                raise DfcError("load_model_script before a model was translated")
            is_path = "\n" not in str(model_script) and Path(str(model_script)).is_file()
            text = Path(model_script).read_text() if is_path else model_script
            self._check_script(text)
            self._script = (self._script + "\n" + text) if append else text
            self.calls.append(("load_model_script", {"model_script": text, "append": append}))

        def _check_script(self, text):
            for line in text.splitlines():
                line = line.split("#", 1)[0].strip()
                if not line:
                    continue
                m = re.fullmatch(r"(?:(\w+)\s*=\s*)?(\w+)\((.*)\)", line)
                if not m or m.group(2) not in COMMANDS:
                    raise DfcError(f"model script: cannot parse {line!r}")
                if m.group(2) == "normalization":
                    lists = re.findall(r"\[([^\]]*)\]", m.group(3))
                    if len(lists) != 2 or any(len(x.split(",")) != 3 for x in lists):
                        raise DfcError(f"model script: normalization needs two 3-value lists: {line!r}")
                for layer in re.findall(r"\[([^\]{}]*)\]", m.group(3)) if m.group(2) == "quantization_param" else []:
                    for name in (x.strip() for x in layer.split(",")):
                        if name not in self._layers:
                            raise DfcError(f"model script: no layer {name!r} in {self.net_name}")

        def _normalization(self):
            m = re.search(r"normalization\(\[([^\]]*)\],\s*\[([^\]]*)\]\)", self._script)
            if not m:
                return None
            return [float(x) for x in m.group(1).split(",")], [float(x) for x in m.group(2).split(",")]

        def optimize(self, calib_data, data_type=None, work_dir=None):
            if self._onnx is None:
                raise DfcError("optimize before a model was translated")
            layers = [f"{self.net_name}/input_layer{i}" for i in range(1, len(self._inputs) + 1)]
            if isinstance(calib_data, dict):
                if sorted(calib_data) != sorted(layers):
                    raise DfcError(f"calibration keys {sorted(calib_data)} != input layers {layers}")
                arrays = [calib_data[k] for k in layers]
            else:
                if len(layers) != 1:
                    raise DfcError(f"the network has inputs {layers}: pass a dict keyed by them")
                arrays = [calib_data]
            for (name, nchw), arr in zip(self._inputs, arrays):
                arr = np.asarray(arr)
                n, c, h, w = nchw if len(nchw) == 4 else (1, nchw[-1], 1, nchw[-2])
                if arr.dtype != np.float32 or arr.ndim != 4 or arr.shape[1:] != (h, w, c):
                    raise DfcError(
                        f"calibration for {name}: {arr.dtype}{arr.shape}, expected float32 (N, {h}, {w}, {c})"
                    )
            norm = self._normalization()
            if norm is not None and float(np.max(arrays[0])) <= 1.0:
                raise DfcError("the script normalizes, but the image calibration looks normalized already (max <= 1)")
            self._calib = arrays
            outs = self._run(arrays, norm, limit=len(arrays[0]))
            self._output_range = (float(outs.min()), float(outs.max()))
            self.calls.append(
                (
                    "optimize",
                    {
                        "shapes": [a.shape for a in arrays],
                        "dtypes": [str(a.dtype) for a in arrays],
                        "range": [(float(a.min()), float(a.max())) for a in arrays],
                    },
                )
            )

        def _run(self, arrays, norm, limit=16):
            """The float graph on NHWC data, NHWC output (normalization applied as the script says)."""
            import onnxruntime as ort

            session = ort.InferenceSession(self._onnx.SerializeToString(), providers=["CPUExecutionProvider"])
            outs = []
            for k in range(min(limit, len(arrays[0]))):
                feed = {}
                for (name, nchw), arr in zip(self._inputs, arrays):
                    x = np.asarray(arr[k : k + 1], np.float32)
                    if len(feed) == 0:
                        if norm is not None:
                            x = (x - np.asarray(norm[0], np.float32)) / np.asarray(norm[1], np.float32)
                        x = x.transpose(0, 3, 1, 2)
                    feed[name] = np.ascontiguousarray(x.reshape(nchw))
                y = session.run(None, feed)[0]
                outs.append(y.transpose(0, 2, 3, 1) if y.ndim == 4 else y.reshape(1, 1, *y.shape[1:]))
            return np.concatenate(outs)

        def infer_context(self, target, device_info=None):
            if not isinstance(target, InferenceContext):
                raise DfcError(f"infer_context takes an InferenceContext, got {target!r}")
            if target is InferenceContext.SDK_QUANTIZED and self._output_range is None:
                raise DfcError("SDK_QUANTIZED emulation needs an optimized model")
            return contextlib.nullcontext(types.SimpleNamespace(infer_context=target))

        def infer(self, context, dataset, batch_size=None, data_count=None):
            out = self._run([np.asarray(dataset, np.float32)], self._normalization(), limit=len(dataset))
            if context.infer_context is InferenceContext.SDK_QUANTIZED:
                bits = self._output_bits()
                scale, zp = _quant(*self._output_range, bits)
                out = (np.clip(np.round(out / scale + zp), 0, 2**bits - 1) - zp) * scale
            self.calls.append(("infer", {"context": context.infer_context.name, "n": len(dataset)}))
            return out.astype(np.float32)

        def _output_bits(self):
            return 16 if re.search(r"\{output_layer\*\},\s*precision_mode=a16_w16", self._script) else 8

        def compile(self):
            if self._output_range is None:
                raise DfcError("compile before optimize")
            norm = self._normalization()
            bits = self._output_bits()
            scale, zp = _quant(*self._output_range, bits)
            out = self._onnx.graph.output[0]
            out_shape = [d.dim_value for d in out.type.tensor_type.shape.dim]
            device_shape = [out_shape[2], out_shape[3], out_shape[1]] if len(out_shape) == 4 else [1, *out_shape[1:]]
            inputs = []
            for i, (name, nchw) in enumerate(self._inputs, start=1):
                shape = [nchw[2], nchw[3], nchw[1]] if i == 1 else [1, nchw[-2], nchw[-1]]
                arr = self._calib[i - 1]
                in_scale, in_zp = _quant(float(arr.min()), float(arr.max()), 8)
                inputs.append(
                    {
                        "name": f"{self.net_name}/input_layer{i}",
                        "onnx": name,
                        "shape": shape,
                        "onnx_shape": nchw,
                        "kind": "image" if i == 1 else "tensor",
                        "scale": in_scale,
                        "zp": in_zp,
                        "bits": 8,
                    }
                )
            header = {
                "hw_arch": self.hw_arch,
                "dfc_version": version,
                "net_name": self.net_name,
                "normalization": norm,
                "inputs": inputs,
                "outputs": [
                    {
                        "name": f"{self.net_name}/output_layer1",
                        "onnx": out.name,
                        "shape": device_shape,
                        "onnx_shape": out_shape,
                        "bits": bits,
                        "scale": scale,
                        "zp": zp,
                    }
                ],
            }
            self.calls.append(("compile", {"hw_arch": self.hw_arch, "bits": bits}))
            return fake_hef.pack(header, self._onnx.SerializeToString())

        def save_har(self, har_path, compressed=False):
            Path(har_path).write_text(json.dumps({"net_name": self.net_name, "script": self._script}))
            self.calls.append(("save_har", {"har_path": str(har_path)}))

    module = types.ModuleType("hailo_sdk_client")
    module.ClientRunner = ClientRunner
    module.InferenceContext = InferenceContext
    module.__version__ = version
    module.calls = calls
    return module


def _quant(lo, hi, bits):
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / (2**bits - 1) if hi > lo else 1.0
    return float(scale), float(np.clip(round(-lo / scale), 0, 2**bits - 1))
