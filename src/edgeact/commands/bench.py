"""`edgeact bench BUNDLE`: latency, control rate, GOP/s and % of the CPU's peak, and action error of every
backend, at 1-4 threads; on a Pi 5 the one command its owner runs and attaches (--json) to a report."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bench",
        help="benchmark the backends of a bundle (or --workload lerobot-default) on this machine",
        description=(
            "Per backend and thread count: p50/p99 predict_chunk latency, ratio to the fp32 reference in the "
            "same run (PyTorch, or ONNX Runtime where torch is not installed), synchronous control rate, model "
            "size, achieved GOP/s and its share of this CPU's peak for the precision, action error vs fp32, the "
            "throttle state during the run, and optionally the closed-loop simulator score. On a Pi: "
            "`edgeact bench BUNDLE --json pi5-bench.json` and attach the file to your report."
        ),
    )
    p.add_argument("bundle", nargs="?", help="bundle directory (omit with --workload)")
    p.add_argument("--workload", choices=("lerobot-default",),
                   help="benchmark LeRobot's default ACT at 360x640 with random weights, built on the fly")
    p.add_argument("--backends", nargs="+", help="backends to run (default: all the bundle has; torch always)")
    p.add_argument("--runs", type=int, default=50, help="timed calls per backend (default 50)")
    p.add_argument("--warmup", type=int, default=5, help="untimed calls per backend first (default 5)")
    p.add_argument("--threads", type=_thread_list, metavar="N[,N...]",
                   help="thread counts, e.g. 4 or 1,2,4 or 1-4 (default: 1 up to the physical cores, at most 4)")
    p.add_argument("--frames", metavar="EPISODES", help="held-out frames for the action error (default: synthetic)")
    p.add_argument("--n-frames", type=int, default=16, help="frames for the action error (default 16)")
    p.add_argument("--sim", metavar="TRACK", help="also drive each backend in the simulator on TRACK (e.g. oval)")
    p.add_argument("--sim-seconds", type=float, default=30.0, help="simulated seconds per backend (default 30)")
    p.add_argument("--no-peak", action="store_true", help="skip measuring this machine's matmul peaks")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    p.add_argument("--png", metavar="FILE", help="write a latency histogram PNG")
    p.add_argument("--keep", metavar="DIR", help="with --workload: build the workload in DIR and keep it")
    p.add_argument("--training", metavar="EPISODES",
                   help="instead: steps/s of tiny-preset training on EPISODES with each speed-up added in turn")
    p.add_argument("--train-steps", type=int, default=20, help="with --training: timed steps per variant and round")
    p.add_argument("--loader", metavar="EPISODES",
                   help="instead: samples/s and per-sample cost of the training input pipeline, per-sample loader "
                   "(before) against the decoded-frame cache (after); needs no GPU")
    p.add_argument("--size", metavar="HxW", help="with --loader: frame size the model takes (default: the episodes')")
    p.add_argument("--workers", type=int, default=0, help="with --loader: per-sample loader worker processes")
    p.add_argument("--batch-size", type=int, default=64, help="with --loader: batch (default 64)")
    p.add_argument("--device", default="cpu", help="with --loader: where batches go (cpu, cuda)")
    p.set_defaults(func=run)


def _thread_list(text: str) -> list[int]:
    """'4' -> [4]; '1,2,4' -> [1, 2, 4]; '1-4' -> [1, 2, 3, 4]."""
    counts: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            counts += list(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give thread counts as 4, 1,2,4 or 1-4") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: thread counts must be >= 1")
    return counts


def run(args: argparse.Namespace) -> int:
    from edgeact import bench
    from edgeact.errors import ConfigError

    if args.loader:
        from edgeact.commands.sim import parse_size
        from edgeact.training.loader_bench import bench_loader

        size = parse_size(args.size) if args.size else None
        loader = bench_loader(args.loader, size=size, batch=args.batch_size, workers=args.workers, device=args.device,
                              progress=lambda m: print(m, flush=True))
        print()
        print(loader.format_table())
        return 0
    if args.training:
        import torch

        from edgeact.training.benchmark import bench_training, format_table

        timings = bench_training(args.training, steps=args.train_steps, progress=lambda m: print(m, flush=True))
        print()
        print(format_table(timings, torch.get_num_threads()))
        return 0
    options = dict(runs=args.runs, warmup=args.warmup, frames=args.frames, n_frames=args.n_frames, sim=args.sim,
                   sim_seconds=args.sim_seconds, threads=args.threads,
                   peak=not args.no_peak)
    if args.workload:
        if args.bundle:
            raise ConfigError("give either a BUNDLE or --workload, not both")
        report = bench.run_workload(args.workload, args.backends, keep=args.keep, **options)
    elif args.bundle:
        report = bench.bench_bundle(args.bundle, args.backends, **options)
    else:
        raise ConfigError("give a BUNDLE directory or --workload lerobot-default")
    print()
    print(report.format_table())
    if args.json:
        print(f"wrote {bench.save_json(report, args.json)}")
    if args.png:
        print(f"wrote {bench.save_png(report, args.png)}")
    return 0

