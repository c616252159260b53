"""The local side of a deploy: what to send, checked before anything leaves the laptop."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgeact.bundle import MANIFEST_NAME, read_manifest, sha256_file
from edgeact.errors import DeployError


@dataclass(frozen=True)
class LocalBundle:
    """A bundle whose files match its manifest, and its name on the Pi."""

    path: Path
    files: dict[str, str]  # name -> sha256, manifest.json included
    models: tuple[str, ...]  # backends the manifest lists
    hefs: dict[str, tuple[str, ...]] = field(default_factory=dict)  # Hailo backend -> boards it has a HEF for

    @property
    def bundle_id(self) -> str:
        """``<folder name>-<12 hex of the manifest's sha256>``: the manifest hashes every file."""
        name = re.sub(r"[^A-Za-z0-9._-]", "_", self.path.resolve().name).lstrip(".") or "bundle"
        return f"{name}-{self.files[MANIFEST_NAME][:12]}"

    @property
    def total_bytes(self) -> int:
        return sum((self.path / n).stat().st_size for n in self.files)


def verify_local(path: str | Path) -> LocalBundle:
    """Check every file the manifest lists against its sha256; refuse a changed or missing one."""
    path = Path(path)
    manifest = read_manifest(path)
    files = {MANIFEST_NAME: sha256_file(path / MANIFEST_NAME)}
    bad = []
    for name, entry in sorted(manifest.get("files", {}).items()):
        file = path / name
        if name.startswith("/") or ".." in name.split("/") or not file.is_file():
            bad.append(f"{name} (missing)")
            continue
        digest = sha256_file(file)
        if digest != entry.get("sha256"):
            bad.append(f"{name} (sha256 differs)")
        files[name] = digest
    if bad:
        raise DeployError(f"{path}: {', '.join(bad)} since export; nothing was sent. Re-create the bundle "
                          "(edgeact export / quantize) instead of editing it")
    models = manifest.get("models", {})
    hefs = {name: tuple(entry["hefs"]) for name, entry in models.items() if "hefs" in entry}
    return LocalBundle(path, files, tuple(models), hefs)


def choose_backend(bundle: LocalBundle, backend: str | None, hailo_device: str | None = None,
                   machine: str = "aarch64") -> str:
    """The backend the Pi will run: the asked one (it must be in the bundle, and a Hailo one must have a
    HEF for the Pi's board); else the bundle's HEF for the Pi's board when it has a Hailo device
    (``hailo_device``: HAILO8L, HAILO8, HAILO10H), else the bundle's fastest model for the Pi's CPU
    (``machine`` as ``uname -m`` says it; on a Pi 5, LiteRT int8 first)."""
    from edgeact.backends.hailo_part import RUNS_ON, board_of_device
    from edgeact.backends.registry import CPU_PREFERENCE, HAILO_PREFERENCE, cpu_arch

    runs = RUNS_ON.get(hailo_device or "", ())
    if backend in (None, "auto"):
        fits = [name for name in HAILO_PREFERENCE if set(bundle.hefs.get(name, ())) & set(runs)]
        if fits:
            return fits[0]
        return next((b for b in CPU_PREFERENCE[cpu_arch(machine)] if b in bundle.models), "onnx")
    if backend not in bundle.models and backend != "torch":
        raise DeployError(f"{bundle.path} has no {backend} model (it has {', '.join(bundle.models) or 'none'}); "
                          f"quantize it (edgeact quantize {bundle.path} --calib EPISODES) or pick another --backend")
    if backend in bundle.hefs and hailo_device is not None and not set(bundle.hefs[backend]) & set(runs):
        board = board_of_device(hailo_device)
        fix = (f"compile one with `edgeact hailo compile {bundle.path} --hw-arch {board.hw_arch} --calib CALIB` "
               f"(DFC {board.dfc_major}.x)" if board else "edgeact does not compile for that device")
        raise DeployError(f"{bundle.path} has {backend} HEFs for {', '.join(bundle.hefs[backend])}, none that "
                          f"runs on the Pi's {board.product if board else hailo_device}: {fix}")
    return backend


def prepare_source(source: str | Path, calib: str | Path | None, backend: str | None, out: Path | None,
                   config: str | None = None, log: Callable[[str], None] = print) -> Path:
    """SOURCE as a bundle: a bundle as is; a checkpoint is exported (and quantized for the Pi 5) first.

    This is the guide's ``deploy_quantized_model.sh``: checkpoint + episodes in, a verified
    int8 bundle out, written to ``out`` (default ``<checkpoint>-bundle`` beside it).
    """
    source = Path(source)
    if (source / MANIFEST_NAME).is_file():
        return source
    if not source.exists():
        raise DeployError(f"{source} does not exist: give an export bundle or a checkpoint")
    quantize = backend in (None, "auto", "onnx-int8", "litert-int8", "litert-fp16", "litert")
    if quantize and calib is None:
        raise DeployError(f"{source} is a checkpoint: give --calib EPISODES to quantize it for the Pi 5 "
                          "(as the guide's script did), or --backend onnx to deploy the fp32 model")
    from edgeact.export.onnx_export import export_bundle

    out = out or source.with_name(f"{source.stem}-bundle")
    log(f"exporting {source} -> {out}")
    export_bundle(source, out, frames=calib, config_path=config, log=log)
    if quantize:
        from edgeact.export.quantize_onnx import quantize_bundle

        log(f"quantizing {out} for the Pi 5 (int8, calibrated on {calib})")
        quantize_bundle(out, calib, target="pi5", log=log)
        from edgeact.backends.litert_backend import runtime_available

        if runtime_available():
            from edgeact.export.quantize_litert import litert_bundle

            litert_bundle(out, calib, log=log)
        else:
            log("note: no LiteRT models (pip install 'edgeact[litert]' here): the Pi runs onnx-int8, "
                "~4x slower than litert-int8 by the published efficiencies (docs/PI5.md)")
    return out

