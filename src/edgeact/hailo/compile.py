"""`edgeact hailo compile`: model script, then the Dataflow Compiler (parse → optimize → compile) → HEF.

The board decides the compiler: ``--hw-arch hailo8l`` or ``hailo8`` needs DFC 3.x (HEFs for
HailoRT 4.x), ``hailo10h`` needs DFC 5.x (HEFs for HailoRT 5.x); see
:data:`edgeact.backends.hailo_part.BOARDS`. With ``hailo_sdk_client`` importable (x86-64 Linux)
the whole chain runs here, as Hailo's model zoo calls it (v2.x for DFC 3, v5.x for DFC 5; the
calls are the same): ``ClientRunner(hw_arch=...)``, ``translate_onnx_model(path, net,
start_node_names=..., end_node_names=..., net_input_shapes=...)``, ``load_model_script``,
``optimize(calib)``, ``compile()`` → HEF bytes, ``save_har``. The HEF and HAR go into the
bundle's ``hailo/<mode>/<hw_arch>/`` atomically, with the DFC version, the HailoRT it targets,
precision and hw_arch in the manifest.

Without it, the model script is still written into the bundle and :class:`SdkMissing` carries
the DFC to install for that board and the exact ``hailo parser / optimize / compiler`` command
lines for those files, so the user can run them on their DFC machine and register the HEF with
``--hef``.
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
    BOARDS,
    HAR_NAME,
    HEF_NAME,
    HW_ARCHS,
    MODEL_SCRIPT,
    NET_NAME,
    PRECISIONS,
    Board,
    HailoPart,
    hailort_for_dfc,
    hef_dir,
    part_dir,
    read_part,
    resolve_mode,
    verified_file,
    version_tuple,
)
from edgeact.bundle import write_manifest
from edgeact.errors import BackendError, ConfigError, EdgeactError
from edgeact.fileio import atomic_write_bytes, atomic_write_text

STAGES = 4


def sdk_install(board: Board) -> str:
    """What to install to compile for ``board`` (the DFC's major follows the board)."""
    return (
        f"the Hailo Dataflow Compiler {board.dfc_major}.x for {board.hw_arch} (x86-64 Linux, Python 3.10-3.12): "
        f"download the hailo_dataflow_compiler {board.dfc} wheel from hailo.ai's Developer Zone (login; its HEFs "
        f"run on HailoRT {board.hailort}, the Pi's `{board.package}`; pick the DFC paired with the "
        f"HailoRT on your Pi) and `pip install hailo_dataflow_compiler-{board.dfc_major}.*.whl` in a venv there"
    )


def board_for(hw_arch: str) -> Board:
    if hw_arch not in BOARDS:
        raise ConfigError(f"unknown --hw-arch {hw_arch!r}; use one of {', '.join(HW_ARCHS)}")
    return BOARDS[hw_arch]


def check_dfc_for_board(dfc_version: str, board: Board) -> None:
    """ConfigError when the installed DFC cannot compile for ``board`` (DFC 3.x: Hailo-8/8L, 5.x: Hailo-10H)."""
    major = version_tuple(dfc_version)[:1]
    if major and major[0] != board.dfc_major:
        raise ConfigError(
            f"this machine has DFC {dfc_version}, which compiles for "
            f"{', '.join(b.hw_arch for b in BOARDS.values() if b.dfc_major == major[0]) or 'other boards'}; "
            f"{board.hw_arch} ({board.product}) needs {sdk_install(board)} (the two DFCs cannot share a venv)"
        )


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
    board = BOARDS[hw_arch]
    part = HailoPart(part.bundle.resolve(), part.mode, part.block, part.manifest)  # lines that run from anywhere
    folder = part.bundle / part_dir(part.mode)
    out = part.bundle / hef_dir(part.mode, hw_arch)
    parsed, quantized = out / f"{NET_NAME}.parsed.har", out / f"{NET_NAME}.quantized.har"
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
        " ".join(["hailo compiler", q(str(quantized)), "--hw-arch", hw_arch, "--output-dir", q(str(out))]),
        f"edgeact hailo compile {q(str(part.bundle))} --mode {part.mode} --hw-arch {hw_arch} "
        f"--dfc-version {board.dfc} --hef {q(str(out / (NET_NAME + '.quantized.hef')))}   # registers the HEF "
        "(the compiler names it after the HAR; give the DFC version you ran)",
    ]


def compile_bundle(
    bundle: str | Path,
    calib: str | Path,
    precision: str = "a16_w16",
    hw_arch: str = "hailo8l",
    *,
    mode: str | None = None,
    optimization_level: int = 2,
    episodes: str | Path | None = None,
    emulate: bool = False,
    log: Callable[[str], None] = print,
) -> CompileResult:
    """Write the model script; with the DFC, build ``hw_arch``'s HEF into the bundle. Raises SdkMissing
    without it. ``mode`` None: the bundle's only Hailo part."""
    from edgeact.hailo.calib import load_calibration
    from edgeact.hailo.model_script import ModelScript

    if precision not in PRECISIONS:
        raise ConfigError(f"unknown --precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    board = board_for(hw_arch)
    if not 0 <= optimization_level <= 4:
        raise ConfigError(f"--optimization-level must be 0-4 (the DFC's range), got {optimization_level}")
    mode = resolve_mode(bundle, mode)
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
        raise SdkMissing(
            f"{err}. For {board.product} install {sdk_install(board)}; or run these on the machine that has "
            f"it:\n  {lines}"
        ) from err
    check_dfc_for_board(sdk_version(sdk), board)
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
    folder = part.bundle / hef_dir(part.mode, result.hw_arch)
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".har.", dir=folder))
    try:
        runner.save_har(str(staging / HAR_NAME))
        shutil.move(str(staging / HAR_NAME), str(folder / HAR_NAME))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    atomic_write_bytes(folder / HEF_NAME, bytes(hef))
    register_hef(part, folder / HEF_NAME, result.hw_arch, result.precision, sdk_version(sdk))
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


def register_hef(part: HailoPart, hef: Path, hw_arch: str, precision: str, dfc_version: str) -> None:
    """Record a board's HEF in the manifest (hash, precision, the DFC that made it and the HailoRT it
    needs); the mode's backend model lists one HEF per board."""
    rel = hef.relative_to(part.bundle).as_posix()
    entry = {"file": rel, "precision": precision, "dfc_version": dfc_version, "hailort": hailort_for_dfc(dfc_version)}
    har = hef.parent / HAR_NAME
    if har.is_file():
        entry["har"] = har.relative_to(part.bundle).as_posix()
    part.block.setdefault("hefs", {})[hw_arch] = entry
    part.manifest.setdefault("models", {})[BACKEND_FOR_MODE[part.mode]] = {"hefs": part.block["hefs"]}
    write_manifest(part.bundle, part.manifest)


def import_hef(
    bundle: str | Path,
    hef: str | Path,
    mode: str | None = None,
    hw_arch: str = "hailo8l",
    precision: str | None = None,
    dfc_version: str | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Copy a HEF compiled by hand (the printed command lines) into the bundle and register it for
    ``hw_arch``; ``dfc_version``: the DFC that compiled it (the Pi then knows which HailoRT it needs)."""
    board = board_for(hw_arch)
    part = read_part(bundle, resolve_mode(bundle, mode))
    src = Path(hef)
    data = src.read_bytes() if src.is_file() else None
    if not data:
        raise BackendError(f"HEF not found or empty: {src}")
    if dfc_version:
        check_dfc_for_board(dfc_version, board)
    dest = part.bundle / hef_dir(part.mode, hw_arch) / HEF_NAME
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(dest, data)
    script = part.block.get("model_script", {})
    register_hef(part, dest, hw_arch, precision or script.get("precision", "unknown"),
                 dfc_version or "unknown (compiled by hand; give --dfc-version)")
    log(f"registered {dest} as the bundle's {BACKEND_FOR_MODE[part.mode]} model for {hw_arch} ({board.product})")
    return dest
