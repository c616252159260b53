"""The HEF the compiler double writes and the HailoRT double runs: a JSON header (arch, normalization,
streams with their quantization) followed by the NPU graph's ONNX bytes, which the runtime double
executes with ONNX Runtime. Not Hailo's format; only the doubles read it."""

from __future__ import annotations

import json
import struct

MAGIC = b"EDGEACT-DOUBLE-HEF\x00"


def pack(header: dict, onnx_bytes: bytes) -> bytes:
    head = json.dumps(header).encode()
    return MAGIC + struct.pack("<I", len(head)) + head + onnx_bytes


def unpack(data: bytes) -> tuple[dict, bytes]:
    """(header, onnx bytes); ValueError when ``data`` is not one of these files."""
    if not data.startswith(MAGIC):
        raise ValueError("not a HEF (bad magic)")
    (n,) = struct.unpack("<I", data[len(MAGIC) : len(MAGIC) + 4])
    start = len(MAGIC) + 4
    return json.loads(data[start : start + n]), data[start + n :]
