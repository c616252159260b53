"""HailoRT on the Pi: importing it, finding the devices, choosing the HEF, running it, and saying
what to fix when any of that fails. HailoRT 4.x (Hailo-8/8L) and 5.x (Hailo-10H).

Sources, hailo-ai/hailort at tags v4.23.0 (08f088d3) and v5.2.0 (41a720b9):
``hailort/libhailort/bindings/python/platform/hailo_platform/pyhailort/pyhailort.py`` (the API),
``hailort/libhailort/include/hailo/hailort.h`` (status codes), ``bindings/python/src/pyhailort.cpp``
(``VDeviceParams.default()``), ``src/vdma/pcie/pcie_device.cpp``, ``src/vdma/driver/hailort_driver.cpp``,
``src/vdevice/vdevice.cpp`` and ``vdevice_hrpc_client.cpp`` (the behaviours below).

Two APIs:
- InferModel (4.18+, and the only one on a Hailo-10H: 5.x's ``VDevice.configure`` goes to
  ``VDeviceHrpcClient::configure``, which returns HAILO_NOT_IMPLEMENTED): ``VDevice(params)``,
  ``create_infer_model(path)``, ``configure()``, bindings, ``run([bindings], timeout)``. The
  scheduler is set explicitly: 4.x's Python ``VDeviceParams.default()`` forces NONE (then the
  model would need ``activate()`` by hand), 5.x's keeps the library default, ROUND_ROBIN;
- vstreams (4.15-4.17 only): ``HEF``, ``ConfigureParams.create_from_hef``, ``InferVStreams``.

Formats: the image input is UINT8 NHWC (raw pixels; the model script normalizes on the chip).
Outputs keep the HEF's own type (UINT8 or UINT16) and are dequantized here with the stream's
``quant_infos`` (real = (q - qp_zp) * qp_scale): the buffer crossing PCIe stays 2-4x smaller than
FLOAT32. A non-image input (``full`` mode's state token, 1×D) is given as FLOAT32 on purpose:
HailoRT quantizes it with the stream's own parameters.

Errors: pyhailort raises a class per status for some codes (``HailoCommunicationClosedException``,
``HailoRTTimeout``, ...) and ``HailoRTException("libhailort failed with error: N (HAILO_...)")``
for the rest (``ExceptionWrapper.create_exception_from_status``); :func:`status_of` reads both.
Every Hailo import is inside a function: edgeact imports without HailoRT.
"""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass

import numpy as np

from edgeact.backends.hailo_part import BOARDS, Board, board_of_device, version_tuple
from edgeact.errors import BackendError, DeviceLostError

MIN_VERSION = (4, 15)  # vstreams' `quantized` argument ignored from 4.15; older releases are untested
INFER_MODEL_VERSION = (4, 18)
H8, H10 = BOARDS["hailo8l"], BOARDS["hailo10h"]
INSTALL_HINT = (
    f"On the Pi 5: `{H8.install}` for the AI Kit / AI HAT+ (Hailo-8L, Hailo-8: HailoRT 4.x) or "
    f"`{H10.install}` for the AI HAT+ 2 (Hailo-10H: HailoRT 5.x; the two cannot be installed "
    "together), then a venv that sees it: `python3 -m venv --system-site-packages .venv` and, with HailoRT 4.x "
    "or Python < 3.13, `pip install 'numpy<2'` (hailo_platform is built against numpy 1.x there); "
    "`edgeact deploy --setup` does both"
)
DEVICE_HINT = (
    "run `hailortcli scan` (it should list `[-] Device: 0000:01:00.0`); check the HAT's ribbon cable, "
    "`dtparam=pciex1` in /boot/firmware/config.txt, and that the driver is loaded (`lsmod | grep hailo`: "
    "hailo_pci for Hailo-8/8L, hailo1x_pci for Hailo-10H); `edgeact doctor` checks all of it"
)
HELD_HINT = (
    "another process holds the device (HailoRT opens it exclusively): `sudo fuser -v /dev/hailo* /dev/h1x-*` "
    "names it; stop it (`sudo systemctl stop edgeact` when the edgeact service is driving) and try again"
)
DEFAULT_TIMEOUT_MS = 1000
# Statuses that mean the device stopped answering mid-run: reopening it may bring it back.
LOST = frozenset({
    "HAILO_COMMUNICATION_CLOSED", "HAILO_TIMEOUT", "HAILO_DRIVER_OPERATION_FAILED", "HAILO_DRIVER_TIMEOUT",
    "HAILO_STREAM_ABORT", "HAILO_RPC_FAILED", "HAILO_CONNECTION_REFUSED", "HAILO_DRIVER_WAIT_CANCELED",
})
DRIVER_MISMATCH = frozenset({"HAILO_INVALID_DRIVER_VERSION", "HAILO_DRIVER_INVALID_RESPONSE",
                             "HAILO_DRIVER_INVALID_IOCTL"})
HELD = frozenset({"HAILO_DEVICE_IN_USE", "HAILO_OUT_OF_PHYSICAL_DEVICES"})
# pyhailort's exception classes -> the status they stand for (pyhailort.py, create_exception_from_status)
_CLASS_STATUS = {
    "HailoCommunicationClosedException": "HAILO_COMMUNICATION_CLOSED",
    "HailoRTTimeout": "HAILO_TIMEOUT",
    "HailoRTStreamAborted": "HAILO_STREAM_ABORT",
    "HailoRTDriverOperationFailedException": "HAILO_DRIVER_OPERATION_FAILED",
    "HailoRTHEFNotCompatibleWithDevice": "HAILO_HEF_NOT_COMPATIBLE_WITH_DEVICE",
    "HailoRTInvalidHEFException": "HAILO_INVALID_HEF",
    "HailoRTNotFoundException": "HAILO_NOT_FOUND",
    "HailoRTNetworkGroupNotActivatedException": "HAILO_NETWORK_GROUP_NOT_ACTIVATED",
    "HailoRTInvalidOperationException": "HAILO_INVALID_OPERATION",
    "HailoRTInvalidArgumentException": "HAILO_INVALID_ARGUMENT",
}
log = logging.getLogger("edgeact.runtime")


def import_hailort():
    """``hailo_platform``, or BackendError saying how to install it."""
    try:
        import hailo_platform
    except ImportError as err:
        numpy_major = int(np.__version__.split(".")[0])
        extra = (
            f" (this environment has numpy {np.__version__}; hailo_platform 4.x needs numpy<2)"
            if numpy_major >= 2 else ""
        )
        raise BackendError(
            f"hailo_platform (HailoRT's Python API) is not importable: {err}{extra}. {INSTALL_HINT}"
        ) from err
    return hailo_platform


def hailort_version(hailo_platform) -> tuple[int, ...]:
    return version_tuple(str(getattr(hailo_platform, "__version__", "")))


def shown(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version)) or "unknown"


def check_version(hailo_platform) -> tuple[int, ...]:
    """HailoRT's version; BackendError when it is too old for edgeact."""
    version = hailort_version(hailo_platform)
    if version < MIN_VERSION:
        raise BackendError(
            f"HailoRT {shown(version)} is too old; edgeact needs {shown(MIN_VERSION)} or newer: "
            f"`sudo apt update && {H8.install}` (Hailo-8/8L) or `{H10.install}` (Hailo-10H)"
        )
    return version


def status_of(err: BaseException) -> str | None:
    """The HAILO_* status behind a pyhailort exception (its class, else its message), or None."""
    for cls in type(err).__mro__:
        if cls.__name__ in _CLASS_STATUS:
            return _CLASS_STATUS[cls.__name__]
    found = re.search(r"HAILO_[A-Z0-9_]+", str(err))
    return found.group(0) if found else None


def other_stack(version: tuple[int, ...]) -> str:
    """Why a device refused this HailoRT (HAILO_NOT_SUPPORTED when opened) and the fix: 4.x opens only
    Hailo-8/8L, 5.x only Hailo-10/15 (pcie_device.cpp at v4.23.0 and v5.2.0)."""
    if version[:1] == (4,):
        return (
            f"HailoRT {shown(version)} (the 4.x line, Hailo-8/8L only) cannot open this device: it is a "
            f"Hailo-10H ({H10.product}), which needs HailoRT 5.x: `sudo apt remove hailo-all && "
            f"{H10.install}`, reboot, and compile the bundle with --hw-arch hailo10h (DFC 5.x)"
        )
    return (
        f"HailoRT {shown(version)} (the 5.x line, Hailo-10/15 only) cannot open this device: it is a Hailo-8 or "
        f"Hailo-8L ({BOARDS['hailo8'].product}, {H8.product}), which needs HailoRT 4.x: `sudo apt remove "
        f"hailo-h10-all && {H8.install}`, reboot, and compile with --hw-arch hailo8 or hailo8l (DFC 3.x)"
    )


def explain(err: BaseException, version: tuple[int, ...], doing: str) -> BackendError:
    """A BackendError for a HailoRT failure while ``doing`` something, naming the fix."""
    status = status_of(err)
    what = f"HailoRT {shown(version)} failed {doing}: {err!r}"
    if status in LOST:
        return DeviceLostError(f"the Hailo device stopped answering {doing} ({status}): {err!r}")
    if status in DRIVER_MISMATCH:
        return BackendError(
            f"{what}. The Hailo kernel driver and HailoRT {shown(version)} differ, and they must match exactly "
            f"(hailort_driver.cpp: validate_driver_version): reinstall both from one package set (`sudo apt "
            f"install --reinstall {H8.package}`, or `{H10.package}` for a Hailo-10H), then reboot; `edgeact doctor` "
            "shows both versions"
        )
    if status in HELD:
        return BackendError(f"{what}. The device is present but could not be taken: {HELD_HINT}")
    if status == "HAILO_DRIVER_NOT_INSTALLED":
        return BackendError(f"{what}. The Hailo driver is not loaded: {DEVICE_HINT}")
    if status == "HAILO_NOT_SUPPORTED":
        return BackendError(f"{what}. {other_stack(version)}")
    if status == "HAILO_HEF_NOT_COMPATIBLE_WITH_DEVICE":
        return BackendError(
            f"{what}. The HEF was compiled for another board: recompile it for this one "
            "(`edgeact hailo check` names the device; `edgeact hailo compile BUNDLE --hw-arch ...`)"
        )
    if status in ("HAILO_HEF_NOT_SUPPORTED", "HAILO_INVALID_HEF"):
        return BackendError(
            f"{what}. HailoRT {shown(version)} cannot read this HEF: it comes from a Dataflow Compiler newer (or "
            "much older) than this HailoRT. Compile with the DFC paired with the Pi's HailoRT (DFC 3.x for 4.x: "
            f"{H8.dfc} for {H8.hailort}; DFC {H10.dfc} for HailoRT {H10.hailort}), or upgrade HailoRT on the Pi "
            "(`sudo apt update && sudo apt full-upgrade`)"
        )
    if status == "HAILO_NOT_IMPLEMENTED":
        return BackendError(f"{what}. On a Hailo-10H only the InferModel API exists (no vstreams)")
    return BackendError(f"{what}. If no device: {DEVICE_HINT}")


@dataclass
class DeviceInfo:
    device_id: str
    architecture: str  # "HAILO8L", "HAILO8", "HAILO10H", ...
    firmware: str = ""  # "4.23.0" (identify().firmware_version)

    @property
    def board(self) -> Board | None:
        return board_of_device(self.architecture)


def scan_devices(hailo_platform) -> list[DeviceInfo]:
    """Hailo devices on this machine with their architecture and firmware (``[]`` when none).

    BackendError naming the fix when a device refuses this HailoRT (a Hailo-10H under 4.x, a
    Hailo-8/8L under 5.x: HAILO_NOT_SUPPORTED on open) or is held by another process.
    """
    hp = hailo_platform
    version = hailort_version(hp)
    devices = []
    for device_id in hp.Device.scan():
        try:
            device = hp.Device(device_id)
        except hp.HailoRTException as err:
            raise explain(err, version, f"to open device {device_id}") from err
        try:
            info = device.control.identify()
        except hp.HailoRTException as err:
            raise explain(err, version, f"to identify device {device_id}") from err
        finally:
            device.release()
        arch = info.device_architecture
        fw = getattr(info, "firmware_version", None)
        firmware = ".".join(str(getattr(fw, k)) for k in ("major", "minor", "revision")) if fw is not None else ""
        devices.append(DeviceInfo(str(device_id), str(getattr(arch, "name", arch)), firmware))
    return devices


def take_device(hailo_platform) -> None:
    """Open and release a VDevice, as a run would: BackendError naming the fix when that fails (the
    device held by another process: a Hailo-8/8L is taken exclusively, vdevice.cpp ``mark_as_used``)."""
    hp = hailo_platform
    try:
        params = hp.VDevice.create_params()
        params.scheduling_algorithm = hp.HailoSchedulingAlgorithm.ROUND_ROBIN
        hp.VDevice(params).release()
    except hp.HailoRTException as err:
        raise explain(err, hailort_version(hp), "to take the device") from err


def check_stack(version: tuple[int, ...], device: DeviceInfo) -> str | None:
    """BackendError when the device's board needs the other HailoRT line; a warning text when its
    firmware's major.minor differs from HailoRT's (HailoRT then refuses every non-critical control:
    HAILO_UNSUPPORTED_FW_VERSION, device.cpp)."""
    board = device.board
    if board is not None and version[:1] != (board.hailort_major,):
        raise BackendError(other_stack(version))
    fw = version_tuple(device.firmware)
    if fw and fw[:2] != version[:2]:
        return (
            f"device {device.device_id} runs firmware {device.firmware} but HailoRT is {shown(version)}: they must "
            f"share major.minor. Reinstall the package set (`sudo apt install --reinstall "
            f"{(board or H8).package}`) and reboot (the driver loads the firmware at boot)"
        )
    return None


def choose_hef(part, device: DeviceInfo, version: tuple[int, ...]) -> tuple[str, dict, str | None]:
    """(hw_arch, HEF entry, warning) of the part's HEF for ``device``; BackendError naming the fix
    when the bundle has none for it, or the HEF needs a newer HailoRT than this one."""
    found = part.hef_for(device.architecture)
    board = device.board
    if found is None:
        have = ", ".join(sorted(part.hefs)) or "none"
        target = board.hw_arch if board else device.architecture.lower()
        raise BackendError(
            f"the bundle's {part.mode} part has HEFs for {have}, none that runs on this {device.architecture} "
            f"({board.product if board else 'unknown board'}): compile one with `edgeact hailo compile "
            f"{part.bundle} --mode {part.mode} --hw-arch {target} --calib CALIB`"
            + (f" (DFC {board.dfc_major}.x)" if board else "")
        )
    hw_arch, entry = found
    warning = None
    if board is not None and hw_arch != board.hw_arch:
        warning = (
            f"the HEF was compiled for {hw_arch} and runs on this {board.product} below its speed; "
            f"recompile with --hw-arch {board.hw_arch}"
        )
    needs = version_tuple(entry.get("hailort") or "")
    if needs and (needs[0] != version[0] or needs[:2] > version[:2]):
        raise BackendError(
            f"the {hw_arch} HEF was compiled by DFC {entry.get('dfc_version')} for HailoRT {shown(needs)}; this Pi "
            f"has HailoRT {shown(version)}. Upgrade HailoRT (`sudo apt update && sudo apt full-upgrade`) or compile "
            f"with the DFC paired with {shown(version[:2])}"
        )
    return hw_arch, entry, warning


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

    def __init__(self, hailo_platform, hef_path: str, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> None:
        self.hp = hailo_platform
        self.version = check_version(self.hp)
        self.timeout_ms = int(timeout_ms)
        self._stack = contextlib.ExitStack()
        infer_model = self.version >= INFER_MODEL_VERSION and hasattr(self.hp.VDevice, "create_infer_model")
        try:
            if infer_model:
                self._open_infer_model(hef_path)
            else:
                self._open_vstreams(hef_path)
        except BackendError:
            self._stack.close()
            raise
        except self.hp.HailoRTException as err:
            self._stack.close()
            raise explain(err, self.version, f"to load {hef_path}") from err

    # InferModel API -------------------------------------------------------------
    def _open_infer_model(self, hef_path: str) -> None:
        hp = self.hp
        params = hp.VDevice.create_params()
        params.scheduling_algorithm = hp.HailoSchedulingAlgorithm.ROUND_ROBIN  # explicit on 4.x and 5.x
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

    # vstreams API (HailoRT 4.15-4.17) --------------------------------------------------
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
        """feeds: input name -> one frame without batch (NHWC); returns output name -> float32 (no batch).

        DeviceLostError when the device stopped answering (reopen it), BackendError otherwise."""
        try:
            if self.api == "vstreams":
                out = self.pipe.infer({n: np.ascontiguousarray(a)[None] for n, a in feeds.items()})
                return {n: np.asarray(v, np.float32)[0] for n, v in out.items()}
            for name, array in feeds.items():
                self.bindings.input(name).set_buffer(np.ascontiguousarray(array))
            self.configured.run([self.bindings], self.timeout_ms)
        except self.hp.HailoRTException as err:
            raise explain(err, self.version, "during inference") from err
        return {
            n: dequantize(self.bindings.output(n).get_buffer(), self.output_formats[n], self.output_quant[n])
            for n in self.outputs
        }

    def close(self) -> None:
        """Release the device; a device that already dropped out may fail to say goodbye, which is logged."""
        try:
            self._stack.close()
        except Exception as err:  # noqa: BLE001 - HailoRT's release on a dead device; nothing left to free
            log.warning("releasing the Hailo device: %r", err)


def _is_image(shape) -> bool:
    return len(shape) == 3 and shape[-1] == 3 and shape[0] > 1
