"""How large an input does a rover policy need? Train the demo's recipe at several input sizes
and drive each on tracks it never saw; print compute and the estimated Pi 5 chunk time.

    edgeact sim record --out EPISODES --episodes 64 --seconds 7.5 --size 360x640 \\
        --track oval,winding,chicane,hairpin --both-directions
    python scripts/input_size_study.py --episodes EPISODES --out study

Every size trains on the same 360x640 episodes, fitted (centre crop + resize) as the runtime
fits camera frames, and is driven with the simulator's camera at 360x640, fitted the same
way. Each (size, training seed) is trained, exported and driven once, into OUT/SIZE-seedK/
(run.json holds its result); a rerun picks up where it stopped, and several study processes
may run at once on different sizes or seeds (on 2 cores, two one-thread processes:
``OMP_NUM_THREADS=1``). The table is assembled from every run.json: OUT/results.json and
OUT/results.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgeact.commands.sim import parse_size
from edgeact.cpu_peak import PI5_ENGINE_EFFICIENCY as ENGINE_EFFICIENCY
from edgeact.cpu_peak import estimate_pi5_chunk_ms as estimate_chunk_ms
from edgeact.fileio import atomic_write_json, atomic_write_text

CAMERA = (360, 640)  # LeRobot's rover camera: what every size is fitted from


def _name(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def train_and_export(episodes: Path, out: Path, size: tuple[int, int], seed: int, steps: int) -> Path:
    from edgeact.export.onnx_export import export_bundle
    from edgeact.training.loop import TrainConfig, train

    model, bundle = out / "model", out / "bundle"
    if not (model / "best").is_dir():
        train(TrainConfig(data=episodes, out=model, preset="tiny", image_size=size, steps=steps,
                          eval_every=max(steps // 3, 1), seed=seed))
    if not (bundle / "manifest.json").is_file():
        export_bundle(model / "best", bundle, frames=episodes)
    return bundle


def drive(bundle: Path, tracks: list[str], look: int, seconds: float) -> list[dict]:
    import edgeact
    from edgeact.sim.suite import evaluate_tracks

    backend = edgeact.load_policy(str(bundle), backend="onnx")
    try:
        runs = evaluate_tracks(backend, tracks, seconds=seconds, seed=look, render_size=CAMERA,
                               progress=lambda m: print("   ", m, flush=True))
    finally:
        backend.close()
    return [{"track": r.track, "look": look, "laps": round(r.result.laps, 3),
             "off_track": r.result.off_track_events, "mean_xte_m": round(r.result.mean_cross_track_m, 4)}
            for r in runs]


def full_width_gflops(size: tuple[int, int]) -> float:
    """GFLOP per chunk of the rover preset's model (ResNet-18, dim 512, chunk 30) at ``size``."""
    from edgeact.bench import random_stats
    from edgeact.model.act import ACTPolicy
    from edgeact.model.inference import InferenceModel
    from edgeact.model.profile import count_gflops, dummy_inputs
    from edgeact.training.presets import model_config

    config = model_config("rover", size, 2, 2, pretrained=False)
    policy = ACTPolicy(config).eval()
    return count_gflops(InferenceModel(policy, random_stats(config)), dummy_inputs(policy))


def markdown(results: dict) -> str:
    sizes = results["sizes"]
    engines = list(ENGINE_EFFICIENCY)
    lines = ["| input | GFLOP (ResNet-18, dim 512) | " + " | ".join(
                 f"Pi 5 ms, {e}" for e in engines) + " | laps (min / mean) | off-track | val L1 |",
             "|---|---|" + "---|" * len(engines) + "---|---|---|"]
    for name, row in sizes.items():
        drives = [d for run in row["runs"] for d in run["drives"]]
        laps = [d["laps"] for d in drives]
        est = " | ".join(f"{row['pi5_ms'][e]:.0f}" for e in engines)
        val = ", ".join(f"{run['best_val_l1']:.4f}" for run in row["runs"] if run.get("best_val_l1") is not None)
        drove = f"{min(laps):.2f} / {sum(laps) / len(laps):.2f}" if laps else "-"
        lines.append(f"| {name} | {row['gflops']:.2f} | {est} | {drove} | "
                     f"{sum(d['off_track'] for d in drives) if drives else '-'} | {val or '-'} |")
    return "\n".join(lines) + "\n"


def run_once(args: argparse.Namespace, size: tuple[int, int], seed: int) -> dict:
    """Train, export and drive one (size, training seed); kept in its folder's run.json, so a
    rerun (or another study process on other sizes) never repeats or overwrites it."""
    folder = args.out / f"{_name(size)}-seed{seed}"
    run_path = folder / "run.json"
    if run_path.is_file():
        return json.loads(run_path.read_text())
    print(f"== {_name(size)}, training seed {seed}", flush=True)
    bundle = train_and_export(args.episodes, folder, size, seed, args.steps)
    log = [json.loads(line) for line in (folder / "model" / "log.jsonl").read_text().splitlines()]
    val = [e["val_l1"] for e in log if "val_l1" in e]
    drives = [d for look in args.looks.split(",")
              for d in drive(bundle, args.tracks.split(","), int(look), args.seconds)]
    run = {"seed": seed, "best_val_l1": min(val) if val else None,
           "train_minutes": round(log[-1]["seconds"] / 60, 1) if log else None,
           "torch_threads": _torch_threads(), "drives": drives}
    atomic_write_json(run_path, run)
    return run


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=Path, required=True, help="episodes recorded at 360x640")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--sizes", default="96x128,144x256,180x320")
    p.add_argument("--seeds", default="0", help="training seeds, comma-separated")
    p.add_argument("--looks", default="12345,1000", help="appearance seeds of the drives (never in training)")
    p.add_argument("--tracks", default="peanut,peanut-rev,narrows,narrows-rev", help="tracks to drive (unseen)")
    p.add_argument("--seconds", type=float, default=90.0)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--gflops-only", action="store_true", help="only the compute columns; no training")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    if not args.gflops_only:
        for seed in (int(s) for s in args.seeds.split(",")):
            for size in sizes:
                run_once(args, size, seed)
    results = {"sizes": {}}
    for size in sizes:
        gflops = full_width_gflops(size)
        runs = [json.loads(path.read_text()) for path in sorted(args.out.glob(f"{_name(size)}-seed*/run.json"))]
        results["sizes"][_name(size)] = {"gflops": gflops, "runs": runs,
                                         "pi5_ms": {e: estimate_chunk_ms(gflops, e) for e in ENGINE_EFFICIENCY}}
    atomic_write_json(args.out / "results.json", results)
    atomic_write_text(args.out / "results.md", markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
