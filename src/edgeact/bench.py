"""Latency, throughput and accuracy of every backend of a bundle, side by side.

Per backend and thread count (1 to 4, at most the physical cores): p50/p99 latency of
``predict_chunk`` (after warm-up; backends measured in interleaved rounds so that load changes
on a shared machine hit all of them alike), the ratio to the reference measured in the same
run (eager PyTorch fp32, or ONNX Runtime fp32 where torch is not installed, as on the Pi), the
synchronous control rate it allows (1 / p50), the model file size, GFLOPs per call and the
achieved GOP/s with its share of this CPU's arithmetic peak for the backend's precision
(:mod:`edgeact.cpu_peak`: the Pi 5's Cortex-A76 from /proc/cpuinfo), the action error against
the reference on held-out frames (from episodes, else synthetic frames; the report says which),
the temperature and throttle flags before and after (a throttled Pi runs slower than it can),
and optionally the closed-loop score in the simulator.

``workload="lerobot-default"`` builds LeRobot's default ACT (ResNet18, dim 512, 4+1 layers,
chunk 100) at 360x640 with random weights, exports and quantizes it in a temporary directory
(calibrating on synthetic frames) and benchmarks that, so machines can be compared.
"""

from __future__ import annotations

import functools
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeact.errors import BackendError, ConfigError
from edgeact.policy import Backend

WORKLOADS = ("lerobot-default",)


@dataclass
class BenchRow:
    backend: str
    threads: int
    precision: str  # what the backend computes in: int8, fp16, fp32
    p50_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    runs: int
    speedup_vs_reference: float | None  # the reference's p50 / this p50, same run and threads
    rate_hz: float  # synchronous control rate 1 / p50
    size_mb: float
    gflops: float
    gflops_per_s: float
    peak_pct: float | None = None  # achieved / this CPU's peak for the precision at these threads
    error_pct: list[float] | None = None  # mean |err| / action range per action dim
    error_max_pct: list[float] | None = None
    sim: dict | None = None
    note: str = ""
    latencies_ms: list[float] = field(default_factory=list, repr=False)


@dataclass
class BenchReport:
    rows: list[BenchRow]
    bundle: str
    workload: str | None
    gflops: float
    error_source: str
    action_names: list[str]
    machine: dict
    settings: dict
    peaks: dict = field(default_factory=dict)
    reference: str = "torch"
    cpu_peak: dict = field(default_factory=dict)
    thermal: dict = field(default_factory=dict)  # throttle state before and after the timing

    def to_json(self) -> dict:
        return {
            "bundle": self.bundle,
            "workload": self.workload,
            "gflops": self.gflops,
            "error_source": self.error_source,
            "action_names": self.action_names,
            "machine": self.machine,
            "settings": self.settings,
            "peaks": self.peaks,
            "reference": self.reference,
            "cpu_peak": self.cpu_peak,
            "thermal": self.thermal,
            "rows": [asdict(r) for r in self.rows],
        }

    def _peak(self, backend: str) -> float:
        key = "int8_gops" if "int8" in backend else "fp32_gflops"
        return float(self.peaks.get(key, 0.0))

    def format_table(self) -> str:
        names = "/".join(self.action_names)
        header = ["backend", "threads", "p50 ms", "p99 ms", f"vs {self.reference}", "rate Hz", "size MB", "GOP/s",
                  "% peak", f"err % ({names})"]
        has_sim = any(r.sim for r in self.rows)
        if has_sim:
            header.append("sim laps / xte m / off")
        lines = []
        for r in self.rows:
            err = "-" if r.error_pct is None else " / ".join(f"{e:.3f}" for e in r.error_pct)
            cells = [r.backend, str(r.threads), f"{r.p50_ms:.1f}", f"{r.p99_ms:.1f}",
                     "-" if r.speedup_vs_reference is None else f"{r.speedup_vs_reference:.2f}x",
                     f"{r.rate_hz:.1f}", f"{r.size_mb:.1f}", f"{r.gflops_per_s:.0f}",
                     "-" if r.peak_pct is None else f"{r.peak_pct:.1f}", err]
            if has_sim:
                cells.append("-" if not r.sim else
                             f"{r.sim['laps']:.2f} / {r.sim['mean_cross_track_m']:.3f} / {r.sim['off_track_events']}")
            lines.append(cells)
        widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(header)]

        def fmt(cells: list[str]) -> str:
            return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
        out = [fmt(header), fmt(["-" * w for w in widths])] + [fmt(c) for c in lines]
        m = self.machine
        out.append("")
        out.append(f"model: {self.gflops:.2f} GFLOP per call; {self.settings['runs']} timed runs per backend "
                   f"after {self.settings['warmup']} warm-up; threads {self.settings['threads']}")
        out.append(f"error: vs {self.reference} fp32 on {self.error_source}")
        if self.cpu_peak:
            per_core = self.cpu_peak["per_core"]
            known = ", ".join(f"{p} {v:.0f}" for p, v in per_core.items() if v)
            out.append(f"% peak: of {self.cpu_peak['cpu']}'s arithmetic peak, "
                       + (f"G operations/s per core: {known} ({self.cpu_peak['basis']})" if known
                          else f"unknown here ({self.cpu_peak['basis']})"))
        if self.peaks:
            parts = []
            if "fp32_gflops" in self.peaks:
                parts.append(f"fp32 {self.peaks['fp32_gflops']:.0f} GFLOP/s (torch.mm "
                             f"{self.peaks.get('fp32_torch_gflops', 0):.0f}, ORT MatMul "
                             f"{self.peaks.get('fp32_ort_gflops', 0):.0f})")
            if "int8_gops" in self.peaks:
                parts.append(f"int8 {self.peaks['int8_gops']:.0f} GOP/s (ORT MatMulInteger u8s8)")
            out.append("measured matmul throughput, all threads: " + ", ".join(parts))
        out.append("GOP/s counts each multiply-add as 2 operations whatever the precision")
        if self.thermal:
            out.append(f"thermal: {format_thermal(self.thermal)}")
        out.append(f"machine: {m['cpu']} ({m['cores']} cores), load average {m['load_before']} before, "
                   f"{m['load_after']} after")
        try:
            load1 = float(str(m["load_before"]).split()[0])
        except (ValueError, IndexError):
            load1 = 0.0
        if load1 > 0.75 * m["cores"]:
            out.append(f"warning: load average {load1:.1f} on {m['cores']} cores: other processes compete for the "
                       "cores, so latencies are inflated (multi-threaded PyTorch most) and ratios unreliable")
        if any(r.peak_pct is not None and r.peak_pct > 100 for r in self.rows):
            out.append("warning: over 100 % of the peak: the CPU ran faster than the clock the peak assumes "
                       "(a VM's /proc/cpuinfo states the base clock, not the boost one)")
        notes = sorted({f"{r.backend}: {r.note}" for r in self.rows if r.note})
        out += [f"note: {n}" for n in notes]
        return "\n".join(out)


def format_thermal(thermal: dict) -> str:
    """'42.0 -> 51.3 °C, throttled: none' from the before/after snapshots."""
    before, after = thermal.get("before", {}), thermal.get("after", {})
    temps = [t.get("temperature_c") for t in (before, after)]
    temp = " -> ".join(f"{t:.1f}" for t in temps if t is not None)
    if after.get("get_throttled") is None:
        flags = "not readable here (vcgencmd is Raspberry Pi OS's)"
    else:
        new_since_boot = set(after.get("since_boot", [])) - set(before.get("since_boot", []))
        during = sorted(set(after.get("now", [])) | new_since_boot)
        flags = ", ".join(during) if during else "none during the run"
        if during:
            flags += ": the figures are below what this Pi does cooled (fit a cooler, use the 27 W supply)"
    return (f"{temp} °C, " if temp else "") + f"throttling: {flags}"


# --------------------------------------------------------------------------------------
def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model")):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from edgeact.cpu import physical_cores

    info = {"cpu": cpu, "machine": platform.machine(), "cores": physical_cores(), "python": platform.python_version(),
            "load_before": _load()}
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        pass
    return info


def _best_time(run: Callable[[], object], seconds: float, max_runs: int = 50) -> float:
    """Fastest of up to ``max_runs`` calls of ``run`` (at least 3), stopping after ``seconds``."""
    best = float("inf")
    deadline = time.perf_counter() + seconds
    for i in range(max_runs):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
        if i >= 2 and time.perf_counter() > deadline:
            break
    return best


def matmul_peaks(threads: int, size: int = 1536, seconds: float = 1.0) -> dict[str, float]:
    """This machine's dense matrix-multiply throughput with ``threads`` threads (best of a few runs).

    fp32: the better of torch.mm and ONNX Runtime's MatMul (MLAS); int8: ONNX Runtime
    MatMulInteger on u8 x s8 (MLAS, the kernels of the int8 models). GOP/s counts a
    multiply-add as 2, like the model's GFLOPs.
    """
    import torch

    peaks: dict[str, float] = {}
    ops = 2.0 * size**3
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    peaks["fp32_torch_gflops"] = ops / _best_time(lambda: torch.mm(a, b), seconds) / 1e9
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper

        from edgeact.cpu import session_options

        rng = np.random.default_rng(0)
        cases = {
            "fp32_ort_gflops": ("MatMul", TensorProto.FLOAT, TensorProto.FLOAT, TensorProto.FLOAT,
                                rng.random((size, size), np.float32), rng.random((size, size), np.float32)),
            "int8_gops": ("MatMulInteger", TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32,
                          rng.integers(0, 255, (size, size), dtype=np.uint8),
                          rng.integers(-127, 127, (size, size), dtype=np.int8)),
        }
        for key, (op, ta, tb, ty, a_val, b_val) in cases.items():
            graph = helper.make_graph(
                [helper.make_node(op, ["a", "b"], ["y"])], "mm",
                [helper.make_tensor_value_info("a", ta, [size, size]),
                 helper.make_tensor_value_info("b", tb, [size, size])],
                [helper.make_tensor_value_info("y", ty, [size, size])],
            )
            model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
            session = ort.InferenceSession(model.SerializeToString(), session_options(threads),
                                           providers=["CPUExecutionProvider"])
            feeds = {"a": a_val, "b": b_val}
            peaks[key] = ops / _best_time(functools.partial(session.run, None, feeds), seconds) / 1e9
            del session
    except Exception:  # noqa: BLE001 - the ORT peaks are informative only
        pass
    peaks["fp32_gflops"] = max(peaks["fp32_torch_gflops"], peaks.get("fp32_ort_gflops", 0.0))
    return peaks


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def _model_size_mb(bundle: Path, manifest: dict, backend: str) -> float:
    path: Path | None
    if backend == "torch":
        path = bundle / "model.safetensors"
    else:
        entry = manifest["models"].get(backend) or {}
        path = bundle / entry["file"] if "file" in entry else None  # a Hailo backend lists a HEF per board
    return path.stat().st_size / 1e6 if path is not None and path.is_file() else float("nan")


def _available(manifest: dict, reference: str = "torch") -> list[str]:
    """The reference and every backend the bundle has a model file for (a HEF only with a Hailo device, the
    LiteRT models only with LiteRT installed)."""
    from edgeact.backends.hailo_backend import hailo_device_present
    from edgeact.backends.litert_backend import runtime_available
    from edgeact.backends.registry import BACKENDS, HAILO_PREFERENCE

    models = manifest.get("models", {})
    has_hailo = any(b in models for b in HAILO_PREFERENCE) and hailo_device_present()
    has_litert = runtime_available()
    return [reference] + [b for b in BACKENDS
                          if b != reference and b in models and (b not in HAILO_PREFERENCE or has_hailo)
                          and (has_litert or not b.startswith("litert"))]


def bench_bundle(
    bundle: str | Path,
    backends: list[str] | tuple[str, ...] | None = None,
    *,
    runs: int = 50,
    warmup: int = 5,
    frames: str | Path | None = None,
    n_frames: int = 16,
    sim: str | None = None,
    sim_seconds: float = 30.0,
    threads: int | list[int] | None = None,
    workload: str | None = None,
    peak: bool = True,
    load_before: str | None = None,
    log: Callable[[str], None] = print,
) -> BenchReport:
    """Benchmark the backends of an export bundle (default: every one it has).

    ``threads``: one count or several (default: 1 up to the physical cores, at most 4).
    ``peak``: also measure this machine's fp32 and int8 matrix-multiply throughput (needs torch).
    Every backend loaded is closed, whatever happens.
    """
    from edgeact import cpu_peak, load_policy
    from edgeact.bundle import read_manifest
    from edgeact.cpu import physical_cores
    from edgeact.doctor import SystemView, throttle_state
    from edgeact.export.calibration import observations_for

    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    reference = "torch" if _has_torch() else "onnx"
    backends = _backends_to_run(backends, manifest, reference)
    if runs < 1:
        raise ConfigError(f"--runs must be >= 1, got {runs}")
    counts = thread_counts(threads, physical_cores())
    machine = machine_info()
    if load_before:
        machine["load_before"] = load_before  # taken before a workload was built
    system = SystemView()
    thermal = {"before": throttle_state(system)}
    rows: list[BenchRow] = []
    errors: dict[str, Any] = {}
    sim_results: dict[str, dict[str, Any]] = {}
    total_rounds = 0
    for n in counts:
        loaded: dict[str, Backend] = {}
        try:
            _set_torch_threads(n)
            for name in backends:
                log(f"loading {name} ({n} thread{'s' * (n > 1)}) ...")
                loaded[name] = load_policy(str(bundle), backend=name, threads=n)
            spec = loaded[reference].spec
            _, held = observations_for(spec, frames, 0, n_frames)
            if len(held) == 0:
                raise ConfigError(f"no held-out frames in {frames}")
            lat, rounds = _time_backends(loaded, held, runs, warmup, log)
            total_rounds += rounds
            if not errors:  # the same arithmetic at every thread count
                errors = _action_errors(loaded, held, manifest["policy"], log, reference)
                gflops = float(manifest["policy"].get("gflops") or 0.0) or _gflops(loaded)
                sim_results = _drive_sim(loaded, sim, sim_seconds, log) if sim else {}
            rows += [_row(b, n, lat[b], lat[reference], errors[b], gflops, bundle, manifest, loaded[b],
                          sim_results.get(b) if n == counts[0] else None) for b in backends]
        finally:
            for backend in loaded.values():
                backend.close()
    thermal["after"] = throttle_state(system)
    peak_of = cpu_peak.detect(cores=physical_cores())
    for r in rows:
        limit = peak_of.peak(r.precision, r.threads)
        r.peak_pct = None if not limit else 100.0 * r.gflops_per_s / limit
    peaks = {}
    if peak and _has_torch():
        log("measuring this machine's matmul throughput ...")
        peaks = matmul_peaks(max(counts))
    machine["load_after"] = _load()
    settings = {"runs": runs, "warmup": warmup, "threads": counts, "rounds": total_rounds}
    return BenchReport(rows, str(bundle), workload, gflops, f"{len(held)} {held.source}",
                       list(manifest["policy"].get("action_names", [])), machine, settings, peaks, reference,
                       peak_of.to_json(), thermal)


def thread_counts(threads: int | list[int] | tuple[int, ...] | None, cores: int) -> list[int]:
    """The thread counts to time: as asked, else 1 up to the physical cores, at most 4 (a Pi 5 has 4)."""
    if threads is None:
        return list(range(1, min(cores, 4) + 1))
    counts = [threads] if isinstance(threads, int) else list(threads)
    if not counts or min(counts) < 1:
        raise ConfigError(f"--threads must be positive, got {threads}")
    return counts


def _has_torch() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("torch") is not None
    except ValueError:  # a blocked module (sys.modules[name] = None), as in the torch-free tests
        return False


def _set_torch_threads(n: int) -> None:
    if _has_torch():
        import torch

        torch.set_num_threads(n)


def _backends_to_run(backends: list[str] | tuple[str, ...] | None, manifest: dict[str, Any],
                     reference: str = "torch") -> list[str]:
    """The backends asked for (default: all the bundle has and this machine can load), the reference first."""
    from edgeact.backends.registry import BACKENDS

    chosen = list(backends) if backends else _available(manifest, reference)
    unknown = [b for b in chosen if b not in BACKENDS]
    if unknown:
        raise BackendError(f"unknown backend(s) {unknown}; choose from {list(BACKENDS)}")
    return [reference] + [b for b in chosen if b != reference]


def _image(frames: list[np.ndarray], camera_names: tuple[str, ...]) -> Any:
    return frames[0] if len(frames) == 1 else dict(zip(camera_names, frames))


def _time_backends(loaded: dict[str, Backend], held: Any, runs: int, warmup: int,
                   log: Callable[[str], None]) -> tuple[dict[str, list[float]], int]:
    """Latencies (ms) per backend, in interleaved rounds of blocks.

    Before each block: a pause, so that the previous backend's spinning worker threads (ONNX
    Runtime's pool, PyTorch's OpenMP team) go to sleep and do not steal the cores, then one
    discarded call.
    """
    first_frames, state = next(iter(held))
    image = _image(first_frames, next(iter(loaded.values())).spec.camera_names)
    rounds = max(1, min(5, runs // 5))
    per_round = [runs // rounds + (1 if i < runs % rounds else 0) for i in range(rounds)]
    lat: dict[str, list[float]] = {b: [] for b in loaded}
    for backend in loaded.values():
        for _ in range(warmup):
            backend.predict_chunk(image, state)
    t_start = time.perf_counter()
    for r, n in enumerate(per_round):
        for b, backend in loaded.items():
            time.sleep(0.25)
            backend.predict_chunk(image, state)
            for _ in range(n):
                t0 = time.perf_counter()
                backend.predict_chunk(image, state)
                lat[b].append((time.perf_counter() - t0) * 1000)
        done = sum(per_round[: r + 1])
        log(f"timing: round {r + 1}/{rounds} ({done}/{runs} runs per backend, "
            f"{time.perf_counter() - t_start:.0f} s) " + ", ".join(f"{b} {np.median(lat[b]):.1f} ms" for b in lat))
    return lat, rounds


def _action_errors(loaded: dict[str, Backend], held: Any, policy: dict[str, Any],
                   log: Callable[[str], None], reference: str = "torch") -> dict[str, Any]:
    """Each backend's action error vs the fp32 reference on the held-out frames."""
    from edgeact.export.accuracy import action_range, from_errors

    log(f"accuracy: {len(held)} {held.source}")
    span, _ = action_range(policy)
    outputs: dict[str, list[np.ndarray]] = {b: [] for b in loaded}
    for frames_, state in held:
        image = _image(frames_, loaded[reference].spec.camera_names)
        for b, backend in loaded.items():
            outputs[b].append(backend.predict_chunk(image, state))
    ref = np.stack(outputs[reference])
    return {b: from_errors(np.abs(np.stack(out) - ref), span, policy, len(held), held.source, "")
            for b, out in outputs.items()}


def _gflops(loaded: dict[str, Backend]) -> float:
    """GFLOP per call counted on the torch model (bundles from before the manifest recorded it), else 0."""
    from edgeact.backends.torch_backend import TorchBackend

    reference = loaded.get("torch")
    if not isinstance(reference, TorchBackend):
        return 0.0
    from edgeact.export.onnx_export import example_inputs
    from edgeact.model.profile import count_gflops

    return count_gflops(reference.model, list(example_inputs(reference.spec)))


def _drive_sim(loaded: dict[str, Backend], track: str, seconds: float,
               log: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    from edgeact.sim.evaluate import evaluate

    results = {}
    for b, backend in loaded.items():
        log(f"simulator: {b} on {track} for {seconds:g} s ...")
        result = evaluate(backend, track=track, seconds=seconds)
        results[b] = {"laps": result.laps, "mean_cross_track_m": result.mean_cross_track_m,
                      "off_track_events": result.off_track_events, "max_cross_track_m": result.max_cross_track_m}
    return results


def _row(b: str, threads: int, lat: list[float], ref_lat: list[float], error: Any, gflops: float, bundle: Path,
         manifest: dict[str, Any], backend: Backend, sim: dict[str, Any] | None) -> BenchRow:
    v = np.asarray(lat)
    p50 = float(np.median(v))
    note = ""
    if b == "torch":
        note = "size is model.safetensors, which also holds the training-only CVAE encoder"
    elif b in manifest["models"] and manifest["models"][b].get("target"):
        note = f"quantized for target {manifest['models'][b]['target']}"
        if b == "torch-int8":
            note += f", engine {getattr(backend, 'engine', '?')}"
    elif b == "litert-fp16":
        note = "fp16 arithmetic where the CPU has it (ARMv8.2 fp16: the Pi 5); fp32 on x86 without AVX512-FP16"
    return BenchRow(
        backend=b, threads=threads, precision=precision_of(b), p50_ms=p50, p99_ms=float(np.percentile(v, 99)),
        mean_ms=float(v.mean()), min_ms=float(v.min()), runs=len(v),
        speedup_vs_reference=float(np.median(ref_lat)) / p50, rate_hz=1000.0 / p50,
        size_mb=_model_size_mb(bundle, manifest, b), gflops=gflops, gflops_per_s=gflops / (p50 / 1000.0),
        error_pct=error.mean_pct, error_max_pct=error.max_pct, sim=sim, note=note,
        latencies_ms=[float(x) for x in v],
    )


def precision_of(backend: str) -> str:
    """What a backend computes its heavy layers in."""
    if "int8" in backend:
        return "int8"
    return "fp16" if "fp16" in backend else "fp32"


def save_png(report: BenchReport, path: str | Path) -> Path:
    """Latency histogram per backend (log-scaled ms axis), p50 marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgeact.fileio import atomic_save

    path = Path(path)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    all_ms = np.concatenate([r.latencies_ms for r in report.rows])
    lo, hi = max(all_ms.min() * 0.9, 1e-3), all_ms.max() * 1.1
    bins = np.geomspace(lo, hi, 60) if hi / lo > 3 else np.linspace(lo, hi, 60)
    for i, r in enumerate(report.rows):
        color = f"C{i}"
        ax.hist(r.latencies_ms, bins=bins, alpha=0.55, color=color,
                label=f"{r.backend} x{r.threads}: p50 {r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms")
        ax.axvline(r.p50_ms, color=color, linestyle="--", linewidth=1)
    if hi / lo > 3:
        from matplotlib.ticker import FuncFormatter

        ax.set_xscale("log")
        plain = FuncFormatter(lambda v, _: f"{v:g}")
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(plain)
    ax.set_xlabel("predict_chunk latency (ms)")
    ax.set_ylabel("runs")
    title = report.workload or Path(report.bundle).name
    ax.set_title(f"{title}: {report.gflops:.1f} GFLOP/call on {report.machine['cpu']}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_save(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
    return path


def save_json(report: BenchReport, path: str | Path) -> Path:
    from edgeact.fileio import atomic_write_json

    atomic_write_json(Path(path), report.to_json())
    return Path(path)


# --------------------------------------------------------------------------------------
def random_stats(config, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Plausible normalization stats for a random-weight model (ImageNet for images)."""
    from edgeact.config import ACTION, OBS_STATE
    from edgeact.normalization import imagenet_stats

    rng = np.random.default_rng(seed)

    def vec(n):
        mean = rng.uniform(-0.1, 0.1, n).astype(np.float32)
        std = rng.uniform(0.3, 0.6, n).astype(np.float32)
        return {"mean": mean, "std": std, "min": np.full(n, -1, np.float32), "max": np.full(n, 1, np.float32)}

    stats = {key: imagenet_stats() for key in config.image_features}
    if config.state_dim:
        stats[OBS_STATE] = vec(config.state_dim)
    stats[ACTION] = vec(config.action_dim)
    return stats


def random_checkpoint(config, out: str | Path, seed: int = 0, fps: float = 30.0, randomize_norms: bool = True) -> Path:
    """Save a random-weight policy with ``config`` as a LeRobot pretrained directory.

    ``randomize_norms`` gives the frozen batch norms non-trivial statistics (a fresh model's
    are the identity), so a benchmark or test exercises the batch-norm folding.
    """
    import torch

    from edgeact.checkpoint import save_pretrained
    from edgeact.model.act import ACTPolicy

    torch.manual_seed(seed)
    policy = ACTPolicy(config).eval()
    if randomize_norms:
        randomize_frozen_bn(policy, seed)
    return save_pretrained(policy, random_stats(config, seed), out, fps=fps)


def randomize_frozen_bn(policy, seed: int = 0) -> None:
    """Give frozen batch norms non-trivial statistics (they start as identity), as a trained model has."""
    import torch

    from edgeact.model.backbone import FrozenBatchNorm2d

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in policy.modules():
            if isinstance(m, FrozenBatchNorm2d):
                n = m.weight.numel()
                m.weight.copy_(1 + 0.1 * torch.randn(n, generator=g))
                m.bias.copy_(0.1 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(1 + 0.2 * torch.rand(n, generator=g))


def lerobot_default_config(image_size: tuple[int, int] = (360, 640)):
    """LeRobot's default ACTConfig (ResNet18, dim 512, 4 encoder / 1 decoder layers, chunk 100), rover I/O."""
    from edgeact.config import ACTConfig, rover_features

    inputs, outputs = rover_features(image_size, 2, 2)
    return ACTConfig(input_features=inputs, output_features=outputs, pretrained_backbone_weights=None)


def prepare_workload(workload: str, folder: str | Path, backends=None, calib_frames: int = 16,
                     log: Callable[[str], None] = print) -> Path:
    """Build, export and quantize a named workload in ``folder``; returns the bundle path."""
    from edgeact.backends.registry import BACKENDS
    from edgeact.export.onnx_export import export_bundle

    if workload not in WORKLOADS:
        raise ConfigError(f"unknown workload {workload!r}; choose one of {WORKLOADS}")
    folder = Path(folder)
    backends = set(backends or BACKENDS)
    log(f"workload {workload}: LeRobot's default ACT at 360x640, random weights")
    ckpt = random_checkpoint(lerobot_default_config(), folder / "checkpoint")
    bundle = folder / "bundle"
    result = export_bundle(ckpt, bundle, log=log)
    log(result.summary.format())
    if "onnx-int8" in backends:
        from edgeact.export.quantize_onnx import quantize_bundle

        quantize_bundle(bundle, None, frames=calib_frames, heldout=8, target="auto", log=log)
    if "torch-int8" in backends:
        from edgeact.export.quantize_torch import quantize_torch_bundle

        quantize_torch_bundle(bundle, None, frames=min(calib_frames, 8), heldout=8, target="auto", log=log)
    from edgeact.backends.litert_backend import runtime_available
    from edgeact.bundle import LITERT_MODELS

    if backends & set(LITERT_MODELS) and runtime_available():
        from edgeact.export.quantize_litert import litert_bundle

        litert_bundle(bundle, None, frames=calib_frames, heldout=8, log=log)
    return bundle


def run_workload(workload: str, backends=None, log: Callable[[str], None] = print, keep: str | Path | None = None,
                 **bench_options) -> BenchReport:
    """``prepare_workload`` in a temporary directory (or ``keep``), then ``bench_bundle``."""
    load = _load()
    if keep is not None:
        bundle = prepare_workload(workload, keep, backends, log=log)
        return bench_bundle(bundle, backends, workload=workload, load_before=load, log=log, **bench_options)
    with tempfile.TemporaryDirectory(prefix="edgeact-bench-") as tmp:
        bundle = prepare_workload(workload, tmp, backends, log=log)
        return bench_bundle(bundle, backends, workload=workload, load_before=load, log=log, **bench_options)
