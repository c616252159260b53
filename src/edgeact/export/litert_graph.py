"""A LiteRT (TFLite) flatbuffer under construction: tensors, constant buffers, operators.

Written with the schema's object API that ships inside the ``ai-edge-litert`` wheel
(``ai_edge_litert.schema_py_generated``), so the laptop side needs no converter package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, SupportsFloat

import numpy as np

TYPES = {np.dtype(np.float32): "FLOAT32", np.dtype(np.float16): "FLOAT16", np.dtype(np.int32): "INT32",
         np.dtype(np.int8): "INT8", np.dtype(np.uint8): "UINT8", np.dtype(np.int64): "INT64"}
# options table of each builtin we write (None: no options)
OPTIONS = {"CONV_2D": "Conv2DOptions", "MAX_POOL_2D": "Pool2DOptions", "FULLY_CONNECTED": "FullyConnectedOptions",
           "RESHAPE": "ReshapeOptions", "CONCATENATION": "ConcatenationOptions", "SOFTMAX": "SoftmaxOptions",
           "MEAN": "ReducerOptions", "BATCH_MATMUL": "BatchMatMulOptions", "ADD": "AddOptions", "MUL": "MulOptions",
           "SUB": "SubOptions", "TRANSPOSE": "TransposeOptions", "PAD": "PadOptions", "QUANTIZE": "QuantizeOptions",
           "DEQUANTIZE": "DequantizeOptions", "RSQRT": None, "RELU": None}


@dataclass
class Quant:
    """Affine quantization: real = scale * (q - zero_point); per channel along ``axis`` when scale has several."""

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int = 0

    @classmethod
    def per_tensor(cls, scale: float, zero_point: int) -> Quant:
        return cls(np.array([scale], np.float32), np.array([zero_point], np.int64))


@dataclass
class OpRecord:
    """What the delegation report needs of one operator: its type, what it computes in, its FLOPs."""

    index: int
    op: str
    name: str
    compute: str  # int8, fp32 (fp16 where the engine may use it), or "-" for data movement
    flops: float


class LiteRTGraph:
    """One subgraph; :meth:`serialize` returns the model's bytes."""

    def __init__(self) -> None:
        import ai_edge_litert.schema_py_generated as schema

        self.schema = schema
        self.tensors: list[Any] = []
        self.buffers: list[Any] = [schema.BufferT()]  # buffer 0: the empty buffer of every non-constant
        self.operators: list[Any] = []
        self.opcodes: dict[str, int] = {}
        self.records: list[OpRecord] = []
        self.inputs: list[int] = []
        self.outputs: list[int] = []
        self.metadata: dict[str, bytes] = {}
        self.shapes: dict[int, tuple[int, ...]] = {}
        self.dtypes: dict[int, np.dtype] = {}

    def tensor(self, shape: tuple[int, ...] | list[int], dtype: Any, name: str, quant: Quant | None = None,
               data: np.ndarray | None = None) -> int:
        s = self.schema
        t = s.TensorT()
        t.shape = [int(d) for d in shape]
        t.type = getattr(s.TensorType, TYPES[np.dtype(dtype)])
        t.name = name
        if data is not None:
            buffer = s.BufferT()
            buffer.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
            self.buffers.append(buffer)
            t.buffer = len(self.buffers) - 1
        else:
            t.buffer = 0
        if quant is not None:
            q = s.QuantizationParametersT()
            q.scale = [float(v) for v in np.asarray(quant.scale).reshape(-1)]
            q.zeroPoint = [int(v) for v in np.asarray(quant.zero_point).reshape(-1)]
            q.quantizedDimension = int(quant.axis)
            t.quantization = q
        self.tensors.append(t)
        index = len(self.tensors) - 1
        self.shapes[index] = tuple(t.shape)
        self.dtypes[index] = np.dtype(dtype)
        return index

    def const(self, array: np.ndarray, name: str, quant: Quant | None = None) -> int:
        return self.tensor(array.shape, array.dtype, name, quant, data=array)

    def op(self, kind: str, inputs: list[int], outputs: list[int], name: str, compute: str, flops: SupportsFloat = 0.0,
           **options: Any) -> None:
        s = self.schema
        self.opcodes.setdefault(kind, len(self.opcodes))
        o = s.OperatorT()
        o.opcodeIndex = self.opcodes[kind]
        o.inputs, o.outputs = list(inputs), list(outputs)
        table = OPTIONS.get(kind)
        if table:
            opts = getattr(s, table + "T")()
            for key, value in options.items():
                setattr(opts, key, value)
            o.builtinOptionsType = getattr(s.BuiltinOptions, table)
            o.builtinOptions = opts
        self.records.append(OpRecord(len(self.operators), kind, name, compute, float(flops)))
        self.operators.append(o)

    def serialize(self, description: str) -> bytes:
        import flatbuffers

        s = self.schema
        sub = s.SubGraphT()
        sub.tensors, sub.inputs, sub.outputs, sub.operators = self.tensors, self.inputs, self.outputs, self.operators
        sub.name = "main"
        model = s.ModelT()
        model.version = 3
        model.description = description
        codes = [None] * len(self.opcodes)
        for kind, index in self.opcodes.items():
            code = s.OperatorCodeT()
            code.builtinCode = getattr(s.BuiltinOperator, kind)
            code.deprecatedBuiltinCode = min(code.builtinCode, 127)
            code.version = 1
            codes[index] = code
        model.operatorCodes = codes
        model.subgraphs = [sub]
        buffers = list(self.buffers)
        entries = []
        for key, value in self.metadata.items():
            buffer = s.BufferT()
            buffer.data = np.frombuffer(value, np.uint8)
            buffers.append(buffer)
            entry = s.MetadataT()
            entry.name, entry.buffer = key, len(buffers) - 1
            entries.append(entry)
        model.buffers = buffers
        model.metadata = entries
        builder = flatbuffers.Builder(1 << 20)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())
