"""A double of ``hailo_platform`` (HailoRT 4.23 or 5.2 Python API) that runs the HEF's NPU graph for real.

Signatures are HailoRT's (hailort/libhailort/bindings/python/platform/hailo_platform/pyhailort/
pyhailort.py at v4.23.0 08f088d3 and v5.2.0 41a720b9; every one used here is the same in both):
``VDevice(params=None, *, device_ids=None)``, ``VDevice.create_params()``,
``create_infer_model(hef_source, name="")``, ``InferModel.input(name="")/output(name="")``,
``set_batch_size(batch_size)``, ``configure()``, ``ConfiguredInferModel.create_bindings(
input_buffers=None, output_buffers=None)``, ``run(bindings, timeout)``, ``run_async(bindings,
callback=None)``, ``wait_for_async_ready(timeout_ms=1000, frames_count=1)``, ``activate()``,
``shutdown()``, ``InferStream.set_format_type(type)``, ``set_buffer(buffer)``,
``get_buffer(tf_format=False)``, ``Device.scan()``, ``Device(device_id=None)``; vstreams:
``HEF(hef_source)``, ``ConfigureParams.create_from_hef(hef, interface)``,
``InputVStreamParams.make(configured_network, quantized=None, format_type=None, timeout_ms=None,
queue_size=None, network_name=None)``, ``InferVStreams(configured_net_group, input_vstreams_params,
output_vstreams_params, tf_nms_format=False)``, ``infer(input_data)``.

The two lines, as ``make_module(version="4.23.0" | "5.2.0")`` (hailo-ai/hailort at those tags):
- ``VDevice.create_params()``: 4.x forces the NONE scheduler (``bindings/python/src/pyhailort.cpp``,
  ``VDeviceParams.default``), 5.x keeps the library default ROUND_ROBIN; the property reads back
  as an int, as the pybind getter returns ``uint32_t``;
- opening a device of the other line fails with HAILO_NOT_SUPPORTED (79): 4.x refuses Hailo-1x
  (``pcie_device.cpp``: "Hailo1X Devices are only supported in versions 5.0.0 and above"), 5.x
  refuses Hailo-8/8L ("Hailo8 devices are only supported in versions 4.x.x and earlier");
- HEFs: a HEF whose board the device does not run is HAILO_HEF_NOT_COMPATIBLE_WITH_DEVICE (93;
  a hailo8l HEF runs on a Hailo-8 with a warning, ``device_internal.cpp``), a HEF from a DFC paired
  with a newer HailoRT than this one is HAILO_HEF_NOT_SUPPORTED (92);
- on a Hailo-10H ``VDevice.configure`` (the vstreams path) is HAILO_NOT_IMPLEMENTED (7,
  ``VDeviceHrpcClient::configure``) and ``multi_process_service=True`` HAILO_INVALID_OPERATION (6,
  ``VDeviceBase::validate_params``);
- 5.x no longer exports ``PcieDevice``, ``EthernetDevice``, ``UDPRateLimiter`` and the Mipi enums.
Errors are raised as pyhailort's ``ExceptionWrapper.create_exception_from_status`` does: a class
for some statuses (``HailoCommunicationClosedException``, ``HailoRTTimeout``, ...), else
``HailoRTException("libhailort failed with error: N (HAILO_...)")``. Every device-open of a
4.x Hailo-8 family device takes it exclusively (``mark_as_used``): a held device makes
``VDevice()`` fail with HAILO_OUT_OF_PHYSICAL_DEVICES (74, ``vdevice.cpp``).

``module.device`` injects what a board does: ``held`` (another process has it),
``driver_version`` (a kernel driver that differs from the library: HAILO_INVALID_DRIVER_VERSION,
76), ``drop_after`` (runs that succeed before the device stops answering:
HAILO_COMMUNICATION_CLOSED, 62, and Device.scan() no longer lists it; with ``hang_s`` the run
blocks that long first and fails with HAILO_TIMEOUT, 4), ``reopen_failures`` (opens that fail
while it is gone before it is back), ``firmware``.

What it computes: the image input (UINT8 NHWC, raw pixels) is normalized as the HEF's model
script says, the embedded ONNX graph runs in ONNX Runtime, the output is laid out NHWC and
quantized to the HEF's UINT8/UINT16 grid (or dequantized when FLOAT32 was chosen). Buffers are
checked as HailoRT checks them (C-contiguous, shape, dtype).
"""

from __future__ import annotations

import enum
import time
import types
from dataclasses import dataclass

import fake_hef
import numpy as np


class FormatType(enum.Enum):
    AUTO = 0
    UINT8 = 1
    UINT16 = 2
    FLOAT32 = 3


class HailoSchedulingAlgorithm(enum.Enum):
    NONE = 0
    ROUND_ROBIN = 1


class HailoStreamInterface(enum.Enum):
    PCIe = 0
    ETH = 1


class DeviceArchitectureTypes(enum.IntEnum):
    HAILO8_A0 = 0
    HAILO8 = 1
    HAILO8L = 2
    HAILO15H = 3
    HAILO15L = 4
    HAILO15M = 5
    HAILO10H = 6


STATUS = {  # hailort.h, HAILO_STATUS__X
    "HAILO_INVALID_OPERATION": 6, "HAILO_NOT_IMPLEMENTED": 7, "HAILO_TIMEOUT": 4, "HAILO_INVALID_HEF": 26,
    "HAILO_COMMUNICATION_CLOSED": 62, "HAILO_OUT_OF_PHYSICAL_DEVICES": 74, "HAILO_INVALID_DRIVER_VERSION": 76,
    "HAILO_NOT_SUPPORTED": 79, "HAILO_HEF_NOT_SUPPORTED": 92, "HAILO_HEF_NOT_COMPATIBLE_WITH_DEVICE": 93,
}
H8_FAMILY = ("HAILO8_A0", "HAILO8", "HAILO8L")
RUNS = {"HAILO8L": ("hailo8l",), "HAILO8": ("hailo8", "hailo8l"), "HAILO10H": ("hailo10h",)}
HAILORT_OF_DFC = {3: lambda minor: (4, minor - 10), 5: lambda minor: (5, minor)}  # HEF -> the HailoRT it needs


@dataclass
class DeviceState:
    """What the attached board does (see the module docstring)."""

    held: bool = False
    driver_version: str | None = None
    drop_after: int | None = None
    reopen_failures: int = 0
    hang_s: float = 0.0  # when it drops: the run blocks this long, then HAILO_TIMEOUT (instead of CLOSED)
    firmware: str | None = None
    runs: int = 0
    dropped: bool = False
    opens: int = 0


_NP = {FormatType.UINT8: np.uint8, FormatType.UINT16: np.uint16, FormatType.FLOAT32: np.float32}


@dataclass
class QuantInfo:
    qp_zp: float
    qp_scale: float
    limvals_min: float
    limvals_max: float


def make_module(
    devices=(("0000:01:00.0", "HAILO8L"),),
    version: str = "4.23.0",
    infer_model_api: bool = True,
    log: list | None = None,
) -> types.ModuleType:
    """A fresh ``hailo_platform`` with ``devices`` [(id, arch)] attached; ``log`` records runs."""
    calls = log if log is not None else []
    major, minor = (int(x) for x in version.split(".")[:2])
    state = DeviceState(firmware=version)

    class HailoRTException(Exception):
        pass

    class HailoRTTimeout(HailoRTException):
        pass

    class HailoRTNotFoundException(HailoRTException):
        pass

    class HailoRTInvalidHEFException(HailoRTException):
        pass

    class HailoRTHEFNotCompatibleWithDevice(HailoRTException):
        pass

    class HailoCommunicationClosedException(HailoRTException):
        pass

    by_status = {
        "HAILO_TIMEOUT": (HailoRTTimeout, "Received a timeout - hailort has failed because a timeout had occurred"),
        "HAILO_INVALID_HEF": (HailoRTInvalidHEFException, "Invalid HEF. See hailort.log for more information"),
        "HAILO_HEF_NOT_COMPATIBLE_WITH_DEVICE": (
            HailoRTHEFNotCompatibleWithDevice,
            "HEF file is not compatible with device. See hailort.log for more information",
        ),
        "HAILO_COMMUNICATION_CLOSED": (
            HailoCommunicationClosedException,
            "Communication closed failure. Check server-client connection",
        ),
    }

    def _error(status):
        """As pyhailort's ExceptionWrapper.create_exception_from_status builds it."""
        if status in by_status:
            cls, text = by_status[status]
            return cls(text)
        return HailoRTException(f"libhailort failed with error: {STATUS[status]} ({status})")

    def _open_device(arch):
        """What opening one device checks: this HailoRT line, the driver, the device still there."""
        if (major >= 5) == (arch in H8_FAMILY):
            raise _error("HAILO_NOT_SUPPORTED")
        if state.driver_version is not None and state.driver_version != version:
            raise _error("HAILO_INVALID_DRIVER_VERSION")
        if state.dropped:
            if state.reopen_failures > 0:
                state.reopen_failures -= 1
                raise _error("HAILO_OUT_OF_PHYSICAL_DEVICES")
            state.dropped = False  # back
        state.opens += 1

    def _load_hef(hef_source):
        if isinstance(hef_source, str):
            with open(hef_source, "rb") as f:
                data = f.read()
        elif isinstance(hef_source, bytes):
            data = hef_source
        else:
            raise ValueError("HEF can only be created from a file path (str) or a buffer (bytes)")
        try:
            header, onnx_bytes = fake_hef.unpack(data)
        except ValueError as err:
            raise _error("HAILO_INVALID_HEF") from err
        arch = devices[0][1] if devices else None
        if header["hw_arch"] not in RUNS.get(arch, ()):
            raise _error("HAILO_HEF_NOT_COMPATIBLE_WITH_DEVICE")
        dfc = [int(x) for x in header["dfc_version"].split(".")[:2]]
        if HAILORT_OF_DFC[dfc[0]](dfc[1]) > (major, minor):
            raise _error("HAILO_HEF_NOT_SUPPORTED")
        return header, onnx_bytes

    class _Network:
        """The computation a HEF describes."""

        def __init__(self, header, onnx_bytes):
            import onnxruntime as ort

            self.header = header
            self.session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])

        def run(self, inputs: dict) -> dict:
            feed = {}
            norm = self.header["normalization"]
            for entry in self.header["inputs"]:
                x = np.asarray(inputs[entry["name"]], np.float32)
                if entry["kind"] == "image":
                    if norm is not None:
                        x = (x - np.asarray(norm[0], np.float32)) / np.asarray(norm[1], np.float32)
                    x = x.transpose(2, 0, 1)
                feed[entry["onnx"]] = np.ascontiguousarray(x.reshape(entry["onnx_shape"]))
            y = self.session.run(None, feed)[0][0]
            out = self.header["outputs"][0]
            real = y.transpose(1, 2, 0) if y.ndim == 3 and len(out["onnx_shape"]) == 4 else y.reshape(out["shape"])
            q = np.clip(np.round(real / out["scale"] + out["zp"]), 0, 2 ** out["bits"] - 1)
            return {out["name"]: q}

    def _quant_info(entry):
        lo = (0 - entry["zp"]) * entry["scale"]
        hi = (2 ** entry["bits"] - 1 - entry["zp"]) * entry["scale"]
        return QuantInfo(entry["zp"], entry["scale"], lo, hi)

    def _default_format(entry):
        return FormatType.UINT16 if entry["bits"] == 16 else FormatType.UINT8

    class InferModel:
        class InferStream:
            def __init__(self, entry):
                self._entry = entry
                self._type = _default_format(entry)

            @property
            def name(self):
                return self._entry["name"]

            @property
            def shape(self):
                return list(self._entry["shape"])

            @property
            def format(self):
                return types.SimpleNamespace(type=self._type, order="NHWC")

            def set_format_type(self, type):
                if not isinstance(type, FormatType):
                    raise HailoRTException(f"invalid format type {type!r}")
                self._type = type

            def set_format_order(self, order):
                pass

            @property
            def quant_infos(self):
                return [_quant_info(self._entry)]

        def __init__(self, header, onnx_bytes, hef_path):
            self._net = _Network(header, onnx_bytes)
            self._inputs = {e["name"]: self.InferStream(e) for e in header["inputs"]}
            self._outputs = {e["name"]: self.InferStream(e) for e in header["outputs"]}
            self._batch = None
            self._hef_path = hef_path

        def set_batch_size(self, batch_size):
            if not isinstance(batch_size, int) or batch_size < 1:
                raise HailoRTException(f"invalid batch size {batch_size!r}")
            self._batch = batch_size

        def configure(self):
            return ConfiguredInferModel(self)

        @property
        def input_names(self):
            return list(self._inputs)

        @property
        def output_names(self):
            return list(self._outputs)

        @property
        def inputs(self):
            return list(self._inputs.values())

        @property
        def outputs(self):
            return list(self._outputs.values())

        def input(self, name=""):
            return self._stream(self._inputs, name)

        def output(self, name=""):
            return self._stream(self._outputs, name)

        @staticmethod
        def _stream(streams, name):
            if name == "" and len(streams) == 1:
                return next(iter(streams.values()))
            if name not in streams:
                raise HailoRTNotFoundException(f"no stream {name!r}")
            return streams[name]

    class _BindingStream:
        def __init__(self, stream):
            self._stream = stream
            self._buffer = None

        def set_buffer(self, buffer):
            if not buffer.flags.c_contiguous:
                raise HailoRTException("Buffer must be C_CONTIGUOUS")
            if list(buffer.shape) != self._stream.shape or buffer.dtype != _NP[self._stream._type]:
                raise HailoRTException(
                    f"buffer {buffer.dtype}{list(buffer.shape)} does not match the stream's "
                    f"{self._stream._type.name}{self._stream.shape}"
                )
            self._buffer = buffer

        def get_buffer(self, tf_format=False):
            return self._buffer

    class ConfiguredInferModel:
        class Bindings:
            def __init__(self, model):
                self._ins = {n: _BindingStream(s) for n, s in model._inputs.items()}
                self._outs = {n: _BindingStream(s) for n, s in model._outputs.items()}

            def input(self, name=""):
                return InferModel._stream(self._ins, name)

            def output(self, name=""):
                return InferModel._stream(self._outs, name)

        def __init__(self, model):
            self._model = model
            self._active = False
            self._open = True

        def __enter__(self):
            return self

        def __exit__(self, exc_type, exc_value, traceback):
            self._open = False

        def activate(self):
            if self._model._scheduler:
                raise HailoRTException("activate() is invalid with the scheduler enabled")
            self._active = True

        def deactivate(self):
            self._active = False

        def create_bindings(self, input_buffers=None, output_buffers=None):
            bindings = self.Bindings(self._model)
            for name, buf in (input_buffers or {}).items():
                bindings.input(name).set_buffer(buf)
            for name, buf in (output_buffers or {}).items():
                bindings.output(name).set_buffer(buf)
            return bindings

        def wait_for_async_ready(self, timeout_ms=1000, frames_count=1):
            pass

        def run(self, bindings, timeout):
            self.run_async(bindings).wait(timeout)

        def run_async(self, bindings, callback=None):
            if not self._open:
                raise HailoRTException("the configured model was released")
            if state.dropped or (state.drop_after is not None and state.runs >= state.drop_after):
                state.dropped, state.drop_after = True, None
                if state.hang_s:
                    time.sleep(state.hang_s)  # HailoRT waits out the run's timeout
                    raise _error("HAILO_TIMEOUT")
                raise _error("HAILO_COMMUNICATION_CLOSED")
            state.runs += 1
            if not self._model._scheduler and not self._active:
                raise HailoRTException("HAILO_NETWORK_GROUP_NOT_ACTIVATED: no scheduler and not activated")
            for b in bindings:
                ins = {}
                for name, stream in b._ins.items():
                    buf = stream.get_buffer()
                    if buf is None:
                        raise HailoRTException(f"input {name} has no buffer")
                    entry = stream._stream._entry
                    if stream._stream._type is FormatType.FLOAT32 and entry["kind"] != "image":
                        qi = _quant_info(entry)  # HailoRT quantizes a FLOAT32 input on the host
                        buf = (np.clip(np.round(buf / qi.qp_scale + qi.qp_zp), 0, 255) - qi.qp_zp) * qi.qp_scale
                    ins[name] = buf
                outs = self._model._net.run(ins)
                for name, stream in b._outs.items():
                    buf = stream.get_buffer()
                    if buf is None:
                        raise HailoRTException(f"output {name} has no buffer")
                    q = outs[name]
                    if stream._stream._type is FormatType.FLOAT32:
                        qi = _quant_info(stream._stream._entry)
                        q = (q - qi.qp_zp) * qi.qp_scale
                    buf[...] = q.astype(buf.dtype)
                calls.append(("run", {name: s.get_buffer().shape for name, s in b._ins.items()}))
            return AsyncInferJob()

        def shutdown(self):
            self._open = False

    class AsyncInferJob:
        def wait(self, timeout_ms):
            if not isinstance(timeout_ms, int) or timeout_ms <= 0:
                raise HailoRTException(f"invalid timeout {timeout_ms!r} (milliseconds)")

    class VDeviceParams:
        """pybind's VDeviceParamsWrapper: the scheduler reads back as an int (uint32_t getter)."""

        def __init__(self):
            self._scheduling = HailoSchedulingAlgorithm.ROUND_ROBIN if major >= 5 else HailoSchedulingAlgorithm.NONE
            self.device_count = 1
            self.multi_process_service = False
            self.group_id = "UNIQUE"

        @property
        def scheduling_algorithm(self):
            return self._scheduling.value

        @scheduling_algorithm.setter
        def scheduling_algorithm(self, value):
            if not isinstance(value, HailoSchedulingAlgorithm):
                raise TypeError(f"incompatible function arguments: {value!r}")
            self._scheduling = value

    class VDevice:
        def __init__(self, params=None, *, device_ids=None):
            self._params = params if params is not None else VDevice.create_params()
            if not devices:
                raise _error("HAILO_OUT_OF_PHYSICAL_DEVICES")
            arch = devices[0][1]
            if self._params.multi_process_service and arch == "HAILO10H":
                raise _error("HAILO_INVALID_OPERATION")
            _open_device(arch)
            if state.held:  # mark_as_used found it in use: no free device left
                raise _error("HAILO_OUT_OF_PHYSICAL_DEVICES")
            self._arch = arch
            self._released = False

        @staticmethod
        def create_params():
            return VDeviceParams()

        def __enter__(self):
            return self

        def __exit__(self, *args):
            self.release()
            return False

        def release(self):
            self._released = True

        def create_infer_model(self, hef_source, name=""):
            header, onnx_bytes = _load_hef(hef_source)
            model = InferModel(header, onnx_bytes, hef_source)
            model._scheduler = self._params.scheduling_algorithm == HailoSchedulingAlgorithm.ROUND_ROBIN.value
            return model

        def configure(self, hef, configure_params_by_name={}):  # noqa: B006 - HailoRT's signature (4.23, 5.2)
            if self._arch == "HAILO10H":
                raise _error("HAILO_NOT_IMPLEMENTED")
            return [ConfiguredNetwork(hef)]

    if not infer_model_api:
        del VDevice.create_infer_model

    class HEF:
        def __init__(self, hef_source):
            self._header, self._onnx = _load_hef(hef_source)

        def get_input_vstream_infos(self, name=None):
            return [
                types.SimpleNamespace(name=e["name"], shape=tuple(e["shape"]), quant_info=_quant_info(e))
                for e in self._header["inputs"]
            ]

        def get_output_vstream_infos(self, name=None):
            return [
                types.SimpleNamespace(name=e["name"], shape=tuple(e["shape"]), quant_info=_quant_info(e))
                for e in self._header["outputs"]
            ]

    class ConfigureParams:
        @staticmethod
        def create_from_hef(hef, interface):
            if not isinstance(interface, HailoStreamInterface):
                raise HailoRTException(f"invalid interface {interface!r}")
            return {"hef": hef}

    class ConfiguredNetwork:
        def __init__(self, hef):
            self._hef = hef
            self._net = _Network(hef._header, hef._onnx)
            self._active = False

        @staticmethod
        def create_params():
            return {}

        def activate(self, network_group_params=None):
            network = self

            class _Activated:
                def __enter__(self):
                    network._active = True
                    return self

                def __exit__(self, *args):
                    network._active = False

            return _Activated()

    class _VStreamParams:
        @staticmethod
        def make(
            configured_network, quantized=None, format_type=None, timeout_ms=None, queue_size=None, network_name=None
        ):
            return {"format_type": format_type}

    class InputVStreamParams(_VStreamParams):
        pass

    class OutputVStreamParams(_VStreamParams):
        pass

    class InferVStreams:
        def __init__(self, configured_net_group, input_vstreams_params, output_vstreams_params, tf_nms_format=False):
            self._net = configured_net_group
            self._out_format = output_vstreams_params["format_type"]

        def __enter__(self):
            return self

        def __exit__(self, *args):
            return False

        def infer(self, input_data):
            if not self._net._active:
                raise HailoRTException("HAILO_NETWORK_GROUP_NOT_ACTIVATED")
            header = self._net._hef._header
            ins = {e["name"]: np.asarray(input_data[e["name"]])[0] for e in header["inputs"]}
            outs = self._net._net.run(ins)
            result = {}
            for e in header["outputs"]:
                q = outs[e["name"]]
                if self._out_format is FormatType.FLOAT32:
                    q = (q - e["zp"]) * e["scale"]
                result[e["name"]] = np.asarray(q, np.float32)[None]
            calls.append(("infer", sorted(ins)))
            return result

    class _Control:
        def __init__(self, arch):
            self._arch = arch

        def identify(self):
            fw = [int(x) for x in state.firmware.split(".")]
            firmware = types.SimpleNamespace(major=fw[0], minor=fw[1], revision=fw[2])
            return types.SimpleNamespace(device_architecture=DeviceArchitectureTypes[self._arch],
                                         firmware_version=firmware, board_name="Hailo-8")

    class Device:
        @classmethod
        def scan(cls):
            if state.dropped and state.reopen_failures > 0:  # off the bus: each look costs one failed reopen
                state.reopen_failures -= 1
                return []
            return [d for d, _ in devices]

        def __init__(self, device_id=None):
            ids = dict(devices)
            if device_id is None:
                if not ids:
                    raise HailoRTException("HailoRT device not found in the system")
                device_id = next(iter(ids))
            _open_device(ids[device_id])
            self._id = device_id
            self.control = _Control(ids[device_id])

        def release(self):
            pass

    module = types.ModuleType("hailo_platform")
    for obj in (
        FormatType,
        HailoSchedulingAlgorithm,
        HailoStreamInterface,
        HailoRTException,
        VDevice,
        HEF,
        ConfigureParams,
        InputVStreamParams,
        OutputVStreamParams,
        InferVStreams,
        Device,
    ):
        setattr(module, obj.__name__, obj)
    if major < 5:  # removed from 5.x's hailo_platform/__init__.py
        for name in ("PcieDevice", "EthernetDevice", "UDPRateLimiter", "MipiDataTypeRx"):
            setattr(module, name, type(name, (), {}))
    module.HailoCommunicationClosedException = HailoCommunicationClosedException
    module.__version__ = version
    module.calls = calls
    module.device = state
    inner = types.ModuleType("hailo_platform.pyhailort.pyhailort")
    for obj in (
        HailoRTException,
        HailoRTTimeout,
        HailoRTNotFoundException,
        HailoRTInvalidHEFException,
        HailoRTHEFNotCompatibleWithDevice,
        HailoCommunicationClosedException,
        DeviceArchitectureTypes,
        InferModel,
        ConfiguredInferModel,
    ):
        setattr(inner, obj.__name__, obj)
    module.pyhailort = types.ModuleType("hailo_platform.pyhailort")
    module.pyhailort.pyhailort = inner
    return module
