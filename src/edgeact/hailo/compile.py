"""`edgeact hailo compile`: model script, then the Dataflow Compiler (parse → optimize → compile) → HEF.

With ``hailo_sdk_client`` importable (x86-64 Linux, DFC 3.x) the whole chain runs here, as
Hailo's model zoo calls it: ``ClientRunner(hw_arch=...)``, ``translate_onnx_model(path, net,
start_node_names=..., end_node_names=..., net_input_shapes=...)``, ``load_model_script``,
``optimize(calib)``, ``compile()`` → HEF bytes, ``save_har``. The HEF and HAR go into the
bundle atomically, with the DFC version, precision and hw_arch in the manifest.

Without it, the model script is still written into the bundle and :class:`SdkMissing` carries
the exact ``hailo parser / optimize / compiler`` command lines for those files, so the user can
run them on their DFC machine and register the HEF with ``--hef``.
"""

from __future__ import annotations

import shlex
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeact.backends.hailo_part import (
    BACKEND_FOR_MODE,
    HAR_NAME,
    HEF_NAME,
    HW_ARCHS,
    MODEL_SCRIPT,
    NET_NAME,
    PRECISIONS,
    HailoPart,
    part_dir,
    read_part,
    verified_file,
)
from edgeact.bundle import write_manifest
from edgeact.errors import BackendError, ConfigError, EdgeactError
from edgeact.fileio import atomic_write_bytes, atomic_write_text

SDK_INSTALL = (
    "the Hailo Dataflow Compiler (x86-64 Linux, Python 3.10-3.12): download the "
    "hailo_dataflow_compiler 3.x wheel from hailo.ai's Developer Zone (login) and "
    "`pip install hailo_dataflow_compiler-3.*.whl` in a venv on that machine"
)
STAGES = 4


class SdkMissing(EdgeactError):
    """hailo_sdk_client is not importable; the message holds the command lines to run by hand."""


@dataclass
class CompileResult:
    bundle: Path
    mode: str
    precision: str
    hw_arch: str
    model_script: Path
    hef: Path | None = None
    sixteen_bit_layers: list[str] = field(default_factory=list)
    emulation: dict[str, Any] | None = None


def import_sdk():
    try:
        import hailo_sdk_client
    except ImportError as err:
        raise SdkMissing(f"hailo_sdk_client is not importable ({err})") from err
    return hailo_sdk_client


def sdk_version(sdk) -> str:
    from importlib import metadata

    try:
        return metadata.version("hailo_dataflow_compiler")
    except metadata.PackageNotFoundError:
        return str(getattr(sdk, "__version__", "unknown"))


def command_lines(part: HailoPart, calib: Path, hw_arch: str) -> list[str]:
    """The DFC CLI for the part's files (flags as Hailo's CLI has them; the guide's were wrong)."""
    npu = part.block["npu"]
    part = HailoPart(part.bundle.resolve(), part.mode, part.block, part.manifest)  # lines that run from anywhere
    folder = part.bundle / part_dir(part.mode)
    parsed, quantized = folder / f"{NET_NAME}.parsed.har", folder / f"{NET_NAME}.quantized.har"
    q = shlex.quote
    return [
        " ".join(
            [
                "hailo parser onnx",
                q(str(part.path("npu"))),
                "--hw-arch",
                hw_arch,
                "--start-node-names",
                *map(q, npu["start_node_names"]),
                "--end-node-names",
                *map(q, npu["end_node_names"]),
                "--har-path",
                q(str(parsed)),
                "-y",
            ]
        ),
        " ".join(
            [
                "hailo optimize",
                q(str(parsed)),
                "--hw-arch",
                hw_arch,
                "--calib-set-path",
                q(str(calib)),
                "--model-script",
                q(str(folder / MODEL_SCRIPT)),
                "--output-har-path",
                q(str(quantized)),
            ]
        ),
        " ".join(["hailo compiler", q(str(quantized)), "--hw-arch", hw_arch, "--output-dir", q(str(folder))]),
        f"edgeact hailo compile {q(str(part.bundle))} --mode {part.mode} --hw-arch {hw_arch} "
        f"--hef {q(str(folder / (NET_NAME + '.quantized.hef')))}   # registers the HEF in the manifest (the compiler "
        "names it after the HAR)",
    ]


def compile_bundle(
    bundle: str | Path,
    calib: str | Path,
    precision: str = "a16_w16",
    hw_arch: str = "hailo8l",
    *,
    mode: str = "split",
    optimization_level: int = 2,
    episodes: str | Path | None = None,
    emulate: bool = False,
    log: Callable[[str], None] = print,
) -> CompileResult:
    """Write the model script; with the DFC, build the HEF into the bundle. Raises SdkMissing without it."""
    from edgeact.hailo.calib import load_calibration
    from edgeact.hailo.model_script import ModelScript

    if precision not in PRECISIONS:
        raise ConfigError(f"unknown --precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if hw_arch not in HW_ARCHS:
        raise ConfigError(f"unknown --hw-arch {hw_arch!r}; use one of {', '.join(HW_ARCHS)}")
    if not 0 <= optimization_level <= 4:
        raise ConfigError(f"--optimization-level must be 0-4 (the DFC's range), got {optimization_level}")
    part = read_part(bundle, mode)
    calib = Path(calib)
    arrays = load_calibration(calib, part)
    n_calib = len(next(iter(arrays.values())))
    layers: list[str] = []
    if precision == "mixed":
        layers = _mixed_layers(part, calib, episodes, log)
    norm = part.block["normalization"]
    script = ModelScript(precision, norm["mean"], norm["std"], n_calib, optimization_level, layers)
    script_path = part.path("npu").parent / MODEL_SCRIPT
    atomic_write_text(script_path, script.text())
    part.block["model_script"] = {
        "file": f"{part_dir(mode)}/{MODEL_SCRIPT}",
        "precision": precision,
        "sixteen_bit_layers": layers,
    }
    write_manifest(part.bundle, part.manifest)
    log(f"[1/{STAGES}] model script ({precision}) -> {script_path}")
    result = CompileResult(part.bundle, mode, precision, hw_arch, script_path, sixteen_bit_layers=layers)
    try:
        sdk = import_sdk()
    except SdkMissing as err:
        lines = "\n  ".join(command_lines(part, calib.resolve(), hw_arch))
        raise SdkMissing(f"{err}. Install {SDK_INSTALL}; or run these on the machine that has it:\n  {lines}") from err
    return _run_dfc(sdk, part, arrays, script_path, result, emulate, episodes, log)


def _mixed_layers(part: HailoPart, calib: Path, episodes, log) -> list[str]:
    """DFC layer names of the layers the emulation finds sensitive (see edgeact.hailo.emulate)."""
    import onnx

    from edgeact.hailo.emulate import emulate_bundle
    from edgeact.hailo.model_script import hailo_layer_names

    log("mixed precision: searching the layers sensitive at 8 bits (emulation) ...")
    results = emulate_bundle(part.bundle, calib, ("mixed",), mode=part.mode, episodes=episodes, log=log)
    names = hailo_layer_names(onnx.load(str(part.path("npu"))))
    chosen = results["mixed"].sixteen_bit_layers
    unnamed = [n for n in chosen if n not in names]
    if unnamed:  # attention MatMuls and layer-norm ops: we do not know the DFC's names for them
        log(f"warning: {len(unnamed)} sensitive layers have no DFC name edgeact knows and stay 8-bit in the script "
            f"(e.g. {unnamed[:3]}); the compiled model may be less accurate than the emulation. Consider a16_w16")
    return [names[n] for n in chosen if n in names]


def _run_dfc(
    sdk,
    part: HailoPart,
    arrays: dict[str, np.ndarray],
    script: Path,
    result: CompileResult,
    emulate: bool,
    episodes,
    log,
) -> CompileResult:
    npu = part.block["npu"]
    runner = sdk.ClientRunner(hw_arch=result.hw_arch)
    log(f"[2/{STAGES}] parse {part.path('npu').name} (DFC {sdk_version(sdk)}, {result.hw_arch})")
    runner.translate_onnx_model(
        str(part.path("npu")),
        NET_NAME,
        start_node_names=npu["start_node_names"],
        end_node_names=npu["end_node_names"],
        net_input_shapes=npu["net_input_shapes"],
    )
    _check_layer_names(runner, result.sixteen_bit_layers)
    runner.load_model_script(str(script))  # a path: both forms are accepted, the file is what the CLI uses too
    log(f"[3/{STAGES}] optimize on {len(next(iter(arrays.values())))} calibration frames (this is the long stage)")
    calib_data: Any = next(iter(arrays.values())) if len(arrays) == 1 else arrays
    runner.optimize(calib_data)
    if emulate:
        result.emulation = _sdk_emulation(sdk, runner, part, episodes, log)
    log(f"[4/{STAGES}] compile for {result.hw_arch}")
    hef = runner.compile()
    if not isinstance(hef, (bytes, bytearray)) or not hef:
        raise BackendError("the DFC's compile() returned no HEF bytes; see its log above")
    folder = part.path("npu").parent
    staging = Path(tempfile.mkdtemp(prefix=".har.", dir=folder))
    try:
        runner.save_har(str(staging / HAR_NAME))
        shutil.move(str(staging / HAR_NAME), str(folder / HAR_NAME))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    atomic_write_bytes(folder / HEF_NAME, bytes(hef))
    register_hef(part, folder / HEF_NAME, result.hw_arch, result.precision, sdk_version(sdk), har=True)
    result.hef = folder / HEF_NAME
    log(f"wrote {result.hef} ({len(hef) / 1e6:.2f} MB) and {folder / HAR_NAME}")
    return result


def _check_layer_names(runner, layers: list[str]) -> None:
    """The mixed script's layer names must exist in the parsed network (our naming is an assumption)."""
    if not layers or not hasattr(runner, "get_hn_dict"):
        return
    known = set(runner.get_hn_dict().get("layers", {}))
    missing = [name for name in layers if name not in known]
    if missing:
        raise BackendError(
            f"the parsed network has no layers {missing} (edgeact's guess at the DFC's names); "
            f"compile with --precision a16_w16, and report the network's names: {sorted(known)[:8]} ..."
        )


def _sdk_emulation(sdk, runner, part: HailoPart, episodes, log) -> dict[str, Any]:
    """The DFC's own quantized emulation (SDK_QUANTIZED) on held-out frames, vs the float graphs."""
    import onnxruntime as ort

    from edgeact.bundle import spec_from_manifest
    from edgeact.export.accuracy import action_range, from_errors
    from edgeact.export.calibration import observations_for
    from edgeact.hailo.export import run_pair
    from edgeact.hailo.graphs import normalize_pixels

    if part.mode != "split":
        log("  --emulate runs on split bundles only; skipped")
        return {}
    spec = spec_from_manifest(part.manifest)
    _, held = observations_for(spec, episodes, 0, 16)
    norm = part.block["normalization"]
    npu = ort.InferenceSession(str(part.path("npu")), providers=["CPUExecutionProvider"])
    host = ort.InferenceSession(
        str(verified_file(part, "host", "re-run `edgeact hailo export`")), providers=["CPUExecutionProvider"]
    )
    raw = np.stack([cams[0] for cams, _ in held]).astype(np.float32)  # raw 0-255 NHWC: the script normalizes
    with runner.infer_context(sdk.InferenceContext.SDK_QUANTIZED) as ctx:
        quantized = np.asarray(runner.infer(context=ctx, dataset=raw))
    errors = []
    for k, (cams, state) in enumerate(held):
        state = np.asarray(state, np.float32).reshape(1, -1)
        features = np.ascontiguousarray(quantized[k].transpose(2, 0, 1)[None], np.float32)  # NHWC -> NCHW
        got = host.run(None, {"features": features, "state": state})[0][0]
        ref = run_pair(npu, host, "after", normalize_pixels(cams[0][None], norm["mean"], norm["std"]), state)
        errors.append(np.abs(got.astype(np.float64) - ref))
    span, span_source = action_range(part.manifest["policy"])
    err = from_errors(np.stack(errors), span, part.manifest["policy"], len(held), held.source, span_source)
    log(f"  DFC SDK_QUANTIZED emulation: {err.format()}")
    return err.to_json()


def register_hef(part: HailoPart, hef: Path, hw_arch: str, precision: str, dfc_version: str, har: bool = False) -> None:
    """Record a HEF in the manifest (hash, arch, precision, DFC version) as the mode's backend model."""
    rel = hef.relative_to(part.bundle).as_posix()
    part.block["hef"] = {"file": rel}
    if har:
        part.block["har"] = {"file": f"{part_dir(part.mode)}/{HAR_NAME}"}
    part.block["compiled"] = {"hw_arch": hw_arch, "precision": precision, "dfc_version": dfc_version, "hef": rel}
    part.manifest.setdefault("models", {})[BACKEND_FOR_MODE[part.mode]] = {
        "file": rel,
        "precision": precision,
        "hw_arch": hw_arch,
        "dfc_version": dfc_version,
    }
    write_manifest(part.bundle, part.manifest)


def import_hef(
    bundle: str | Path,
    hef: str | Path,
    mode: str = "split",
    hw_arch: str = "hailo8l",
    precision: str | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Copy a HEF compiled by hand (the printed command lines) into the bundle and register it."""
    part = read_part(bundle, mode)
    src = Path(hef)
    data = src.read_bytes() if src.is_file() else None
    if not data:
        raise BackendError(f"HEF not found or empty: {src}")
    if hw_arch not in HW_ARCHS:
        raise ConfigError(f"unknown --hw-arch {hw_arch!r}; use one of {', '.join(HW_ARCHS)}")
    dest = part.path("npu").parent / HEF_NAME
    atomic_write_bytes(dest, data)
    script = part.block.get("model_script", {})
    register_hef(part, dest, hw_arch, precision or script.get("precision", "unknown"), "by hand (CLI)")
    log(f"registered {dest} as the bundle's {BACKEND_FOR_MODE[mode]} model ({hw_arch})")
    return dest
