"""HailoRT on the Pi: importing it, finding the device, and running a HEF (HailoRT 4.x, Hailo-8/8L).

Two APIs, as HailoRT 4.23's ``hailo_platform`` has them:
- InferModel (4.18+): ``VDevice(params)`` with the round-robin scheduler (the 4.x Python default
  is no scheduler, which would need ``activate()`` by hand), ``create_infer_model(path)``,
  ``configure()``, bindings, ``run([bindings], timeout)``;
- vstreams (before 4.18): ``HEF``, ``ConfigureParams.create_from_hef``, ``InferVStreams``.

Formats: the image input is UINT8 NHWC (raw pixels; the model script normalizes on the chip).
Outputs keep the HEF's own type (UINT8 or UINT16) and are dequantized here with the stream's
``quant_infos`` (real = (q - qp_zp) * qp_scale): the buffer crossing PCIe stays 2-4x smaller than
FLOAT32 and the dequantization is one numpy expression. A non-image input (``full`` mode's state
token, 1×D) is given as FLOAT32 on purpose: HailoRT quantizes it with the stream's own parameters.
Every Hailo import is inside a function: edgeact imports without HailoRT.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from edgeact.errors import BackendError

MIN_VERSION = (4, 15)  # vstreams' `quantized` argument ignored from 4.15; older releases are untested
INFER_MODEL_VERSION = (4, 18)
INSTALL_HINT = (
    "On the Pi 5: `sudo apt install hailo-all` (HailoRT 4.x for the Hailo-8/8L HAT), then a venv that sees it: "
    "`python3 -m venv --system-site-packages .venv` and `pip install 'numpy<2'` "
    "(hailo_platform is built against numpy 1.x)"
)
DEVICE_HINT = (
    "run `hailortcli scan` (it should list `[-] Device: 0000:01:00.0`); check the HAT's ribbon cable, "
    "`dtparam=pciex1` in /boot/firmware/config.txt, and that the hailo_pci driver is loaded (`lsmod | grep hailo`)"
)
DEFAULT_TIMEOUT_MS = 1000


def import_hailort():
    """``hailo_platform``, or BackendError saying how to install it."""
    try:
        import hailo_platform
    except ImportError as err:
        numpy_major = int(np.__version__.split(".")[0])
        extra = (
            f" (this environment has numpy {np.__version__}; hailo_platform needs numpy<2)" if numpy_major >= 2 else ""
        )
        raise BackendError(
            f"hailo_platform (HailoRT's Python API) is not importable: {err}{extra}. {INSTALL_HINT}"
        ) from err
    return hailo_platform


def hailort_version(hailo_platform) -> tuple[int, ...]:
    text = str(getattr(hailo_platform, "__version__", "0"))
    return tuple(int(p) for p in text.split(".")[:3] if p.isdigit())


def check_version(hailo_platform) -> tuple[int, ...]:
    version = hailort_version(hailo_platform)
    shown = ".".join(map(str, version))
    if version and version[0] >= 5:
        raise BackendError(
            f"HailoRT {shown} is the 5.x line for Hailo-10/15; the Hailo-8/8L need HailoRT 4.x "
            "(`sudo apt install hailo-all` on Raspberry Pi OS installs it)"
        )
    if version < MIN_VERSION:
        raise BackendError(
            f"HailoRT {shown} is too old; edgeact needs {'.'.join(map(str, MIN_VERSION))} or newer "
            "(4.23 matches DFC 3.33): `sudo apt update && sudo apt install hailo-all`"
        )
    return version


@dataclass
class DeviceInfo:
    device_id: str
    architecture: str  # "HAILO8L", "HAILO8", ...


def scan_devices(hailo_platform) -> list[DeviceInfo]:
    """Hailo devices on this machine with their architecture (``[]`` when none)."""
    devices = []
    for device_id in hailo_platform.Device.scan():
        device = hailo_platform.Device(device_id)
        try:
            arch = device.control.identify().device_architecture
        finally:
            device.release()
        devices.append(DeviceInfo(str(device_id), str(getattr(arch, "name", arch))))
    return devices


def check_arch(hef_arch: str, devices: list[DeviceInfo]) -> str | None:
    """BackendError when the HEF cannot run on the device; a warning text when it runs degraded."""
    device_arch = devices[0].architecture.upper()
    hef_arch = hef_arch.upper()
    if hef_arch == device_arch:
        return None
    if hef_arch == "HAILO8L" and device_arch == "HAILO8":
        return (
            "the HEF was compiled for hailo8l and runs on this Hailo-8 below its speed; recompile with --hw-arch hailo8"
        )
    raise BackendError(
        f"the HEF was compiled for {hef_arch.lower()} but the device is a {device_arch}: recompile with "
        f"`edgeact hailo compile BUNDLE --hw-arch {device_arch.lower()}`"
    )


_DTYPES = {"UINT8": np.uint8, "UINT16": np.uint16, "FLOAT32": np.float32}


def _format_name(fmt) -> str:
    kind = getattr(fmt, "type", fmt)
    return str(getattr(kind, "name", kind)).split(".")[-1].upper()


def dequantize(raw: np.ndarray, format_name: str, quant_info) -> np.ndarray:
    """real = (q - qp_zp) * qp_scale for UINT8/UINT16 buffers; FLOAT32 passes through."""
    if format_name == "FLOAT32":
        return raw.astype(np.float32, copy=False)
    return ((raw.astype(np.float32) - np.float32(quant_info.qp_zp)) * np.float32(quant_info.qp_scale)).astype(
        np.float32
    )


class HefRunner:
    """One HEF configured on the device; ``run({input: array}) -> {output: float32 array (NHWC)}``."""

    def __init__(self, hef_path: str, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> None:
        self.hp = import_hailort()
        self.version = check_version(self.hp)
        self.timeout_ms = int(timeout_ms)
        self._stack = contextlib.ExitStack()
        try:
            if self.version >= INFER_MODEL_VERSION and hasattr(self.hp.VDevice, "create_infer_model"):
                self._open_infer_model(hef_path)
            else:
                self._open_vstreams(hef_path)
        except BackendError:
            self._stack.close()
            raise
        except self.hp.HailoRTException as err:
            self._stack.close()
            raise BackendError(
                f"HailoRT could not load {hef_path}: {err!r}. If the HEF is for another architecture "
                "or a newer DFC, recompile it (`edgeact hailo compile`); if no device: " + DEVICE_HINT
            ) from err

    # InferModel API -------------------------------------------------------------
    def _open_infer_model(self, hef_path: str) -> None:
        hp = self.hp
        params = hp.VDevice.create_params()
        params.scheduling_algorithm = hp.HailoSchedulingAlgorithm.ROUND_ROBIN
        self.vdevice = self._stack.enter_context(hp.VDevice(params))
        self.infer_model = self.vdevice.create_infer_model(hef_path)
        self.infer_model.set_batch_size(1)
        self.inputs = {s.name: s for s in self.infer_model.inputs}
        for stream in self.inputs.values():
            stream.set_format_type(hp.FormatType.UINT8 if _is_image(stream.shape) else hp.FormatType.FLOAT32)
        self.outputs = {s.name: s for s in self.infer_model.outputs}
        self.output_formats = {n: _format_name(s.format) for n, s in self.outputs.items()}
        self.output_quant = {n: s.quant_infos[0] for n, s in self.outputs.items()}
        self.configured = self._stack.enter_context(self.infer_model.configure())
        self._out_buffers = {
            n: np.empty(list(s.shape), _DTYPES[self.output_formats[n]]) for n, s in self.outputs.items()
        }
        self.bindings = self.configured.create_bindings(output_buffers=self._out_buffers)
        self.api = "InferModel"

    # vstreams API ------------------------------------------------------------------
    def _open_vstreams(self, hef_path: str) -> None:
        hp = self.hp
        self.vdevice = self._stack.enter_context(hp.VDevice())
        hef = hp.HEF(hef_path)
        params = hp.ConfigureParams.create_from_hef(hef, interface=hp.HailoStreamInterface.PCIe)
        self.network_group = self.vdevice.configure(hef, params)[0]
        in_params = hp.InputVStreamParams.make(self.network_group, format_type=hp.FormatType.UINT8)
        out_params = hp.OutputVStreamParams.make(self.network_group, format_type=hp.FormatType.FLOAT32)
        self.inputs = {i.name: i for i in hef.get_input_vstream_infos()}
        self.outputs = {o.name: o for o in hef.get_output_vstream_infos()}
        self.output_formats = dict.fromkeys(self.outputs, "FLOAT32")  # HailoRT dequantizes (the old API's way)
        self.output_quant = dict.fromkeys(self.outputs)
        self.pipe = self._stack.enter_context(hp.InferVStreams(self.network_group, in_params, out_params))
        self._stack.enter_context(self.network_group.activate(self.network_group.create_params()))
        self.api = "vstreams"

    # running -------------------------------------------------------------------------
    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """feeds: input name -> one frame without batch (NHWC); returns output name -> float32 (no batch)."""
        try:
            if self.api == "vstreams":
                out = self.pipe.infer({n: np.ascontiguousarray(a)[None] for n, a in feeds.items()})
                return {n: np.asarray(v, np.float32)[0] for n, v in out.items()}
            for name, array in feeds.items():
                self.bindings.input(name).set_buffer(np.ascontiguousarray(array))
            self.configured.run([self.bindings], self.timeout_ms)
        except self.hp.HailoRTException as err:
            raise BackendError(f"HailoRT inference failed: {err!r}") from err
        return {
            n: dequantize(self.bindings.output(n).get_buffer(), self.output_formats[n], self.output_quant[n])
            for n in self.outputs
        }

    def close(self) -> None:
        self._stack.close()


def _is_image(shape) -> bool:
    return len(shape) == 3 and shape[-1] == 3 and shape[0] > 1
