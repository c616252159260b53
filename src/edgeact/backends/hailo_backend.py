"""Hailo backends (Hailo-8L, Hailo-8, Hailo-10H): ``hailo-split`` (backbone on the NPU, transformer
in ONNX Runtime on the CPU) and ``hailo`` (the whole policy on the NPU, the state's Linear on the CPU).

Both run a bundle's compiled HEF for the board found (``edgeact hailo compile --hw-arch``) with
HailoRT 4.x or 5.x (see :mod:`edgeact.backends.hailort`); no torch. The NPU's NHWC feature map
(dequantized from its UINT8/UINT16 stream) becomes the host graph's NCHW input.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from edgeact.bundle import spec_from_manifest
from edgeact.cpu import session_options
from edgeact.errors import BackendError, DeviceLostError
from edgeact.policy import Frames

MODE_OF = {"hailo-split": "split", "hailo": "full"}
log = logging.getLogger("edgeact.runtime")


class HailoBackend:
    """Runs a bundle's Hailo part: NPU through HailoRT, the host graph through ONNX Runtime.

    The HEF is the part's one for the board found (``hailo8l``, ``hailo8``, ``hailo10h``; a hailo8l
    HEF also runs on a Hailo-8, with a warning). ``reopen()`` brings the device back after it
    dropped out (:class:`~edgeact.errors.DeviceLostError` from ``predict_chunk``).
    """

    def __init__(
        self,
        path: str | Path,
        name: str = "hailo-split",
        threads: int | None = None,
        timeout_ms: int | None = None,
        verify: bool = True,
    ) -> None:
        import onnxruntime as ort

        from edgeact.backends.hailo_part import read_part, verified_file
        from edgeact.backends.hailort import (
            DEFAULT_TIMEOUT_MS,
            DEVICE_HINT,
            check_stack,
            check_version,
            choose_hef,
            import_hailort,
            scan_devices,
        )

        if name not in MODE_OF:
            raise BackendError(f"unknown Hailo backend {name!r}; use one of {sorted(MODE_OF)}")
        self.name = name
        self.part = read_part(path, MODE_OF[name])
        if not self.part.hefs:
            raise BackendError(
                f"bundle {path} has no compiled HEF for {name}; compile it with `edgeact hailo compile "
                f"{path} --calib CALIB --mode {self.part.mode} --hw-arch BOARD` (on an x86 machine with the DFC)"
            )
        self.hp = import_hailort()
        version = check_version(self.hp)
        devices = scan_devices(self.hp)
        if not devices:
            raise BackendError(f"no Hailo device found: {DEVICE_HINT}")
        self.device = devices[0]
        warnings = [check_stack(version, self.device)]
        self.hw_arch, entry, arch_warning = choose_hef(self.part, self.device, version)
        how = f"copy the bundle again or re-run `edgeact hailo compile {path} --mode {self.part.mode}`"
        hef = verified_file(self.part, entry["file"], how) if verify else self.part.bundle / entry["file"]
        self.warning = "; ".join(w for w in (*warnings, arch_warning) if w) or None
        if self.warning:
            log.warning(self.warning)
        self.spec = spec_from_manifest(self.part.manifest)
        self.host = ort.InferenceSession(
            str(verified_file(self.part, "host", how)), session_options(threads), providers=["CPUExecutionProvider"]
        )
        self.hef_path = str(hef)
        self.timeout_ms = timeout_ms or DEFAULT_TIMEOUT_MS
        self.npu = self._open()
        inputs = self.part.block["npu"]["inputs"]
        self.image_stream = _stream_for(self.npu.inputs, inputs[0]["layer"], 0)
        self.token_stream = _stream_for(self.npu.inputs, inputs[1]["layer"], 1) if len(inputs) > 1 else None
        self.output_stream = next(iter(self.npu.outputs))
        self.npu_seconds = 0.0  # time spent waiting for the NPU (for bench tables)
        self.reopens = 0

    def _open(self):
        from edgeact.backends.hailort import HefRunner

        return HefRunner(self.hp, self.hef_path, self.timeout_ms)

    def predict_chunk(self, image: Frames, state: np.ndarray) -> np.ndarray:
        frames, state = self.spec.check_inputs(image, state)
        state = state.reshape(1, -1)
        feeds = {self.image_stream: frames[0]}
        if self.token_stream is not None:
            token = self.host.run(None, {"state": state})[0]
            feeds[self.token_stream] = np.ascontiguousarray(token.reshape(1, 1, -1), np.float32)
        if self.npu is None:
            raise DeviceLostError("the Hailo device is closed after it dropped out; reopen() it")
        t0 = time.perf_counter()
        out = self.npu.run(feeds)[self.output_stream]
        self.npu_seconds += time.perf_counter() - t0
        if self.token_stream is not None:  # (1, chunk, A) as [1, chunk, A] rows of the NHWC stream
            return out.reshape(self.spec.chunk_size, self.spec.action_dim).astype(np.float32)
        features = np.ascontiguousarray(out.transpose(2, 0, 1)[None])  # NHWC (h, w, C) -> NCHW (1, C, h, w)
        return self.host.run(None, {"features": features, "state": state})[0][0].astype(np.float32)

    def reopen(self) -> None:
        """Release the device and open it again with the same HEF (after a DeviceLostError).

        Raises BackendError (DeviceLostError while it still does not answer) when that fails;
        the backend stays closed then, and the next ``reopen()`` tries again."""
        from edgeact.backends.hailort import DEVICE_HINT

        if self.npu is not None:
            self.npu.close()
            self.npu = None
        if not self.hp.Device.scan():
            raise DeviceLostError(f"the Hailo device is not on the PCIe bus (Device.scan() finds none): {DEVICE_HINT}")
        self.npu = self._open()
        self.reopens += 1

    def close(self) -> None:
        if self.npu is not None:
            self.npu.close()
            self.npu = None


def _stream_for(streams: dict, layer: str, index: int) -> str:
    """The HEF stream of an input layer: by its name, else by position (HEF names are ``<net>/input_layerK``)."""
    if layer in streams:
        return layer
    names = sorted(streams)
    if index < len(names):
        return names[index]
    raise BackendError(f"the HEF has inputs {names}, none for {layer}; recompile it with `edgeact hailo compile`")


def load(
    path: str | Path, threads: int | None = None, timeout_ms: int | None = None, verify: bool = True
) -> HailoBackend:
    """``hailo-split``: backbone on the Hailo NPU, transformer in ONNX Runtime."""
    return HailoBackend(path, "hailo-split", threads=threads, timeout_ms=timeout_ms, verify=verify)


def load_full(
    path: str | Path, threads: int | None = None, timeout_ms: int | None = None, verify: bool = True
) -> HailoBackend:
    """``hailo``: the whole policy on the Hailo NPU."""
    return HailoBackend(path, "hailo", threads=threads, timeout_ms=timeout_ms, verify=verify)


def hailo_device_present() -> bool:
    """True when hailo_platform imports and sees at least one device (what ``auto`` asks)."""
    try:
        import hailo_platform
    except ImportError:
        return False
    try:
        return bool(hailo_platform.Device.scan())
    except Exception:  # noqa: BLE001 - a broken driver counts as absent for auto; `edgeact hailo check` says why
        return False
