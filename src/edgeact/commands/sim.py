"""`edgeact sim record|eval|bench`: drive the simulated rover."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgeact.errors import ConfigError


def parse_size(text: str, flag: str = "--size") -> tuple[int, int]:
    """'360x640' → (360, 640); ConfigError naming the expected form otherwise."""
    parts = str(text).lower().replace(",", "x").split("x")
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"bad {flag} {text!r}: write it as HxW in pixels, e.g. {flag} 96x128") from None
    if h < 8 or w < 8:
        raise ConfigError(f"bad {flag} {text!r}: height and width must be at least 8 pixels, e.g. {flag} 96x128")
    return h, w


def _track_list(text: str, both_directions: bool = False) -> list[str]:
    from edgeact.sim.track import REVERSE_SUFFIX, parse_tracks

    names = parse_tracks(text)
    if both_directions:
        twins = [n[: -len(REVERSE_SUFFIX)] if n.endswith(REVERSE_SUFFIX) else n + REVERSE_SUFFIX for n in names]
        names += [n for n in twins if n not in names]
    return names


TRACK_HELP = ("oval, winding, chicane (S-bends), hairpin (0.8 m switchbacks), peanut (right-hand bends), narrows "
              "(road width 0.7-1.4 m); NAME-rev drives one the other way")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="simulated rover: record expert episodes, evaluate a policy in closed loop, benchmark",
        description="The rover simulator: a kinematic rover on a closed track seen by a front camera.",
    )
    sub = parser.add_subparsers(dest="sim_command", required=True, metavar="SUBCOMMAND")

    rec = sub.add_parser(
        "record",
        help="record expert-driven episodes (frames + commands) for training",
        description="Record episodes driven by the noisy expert (labels are its clean corrective commands), "
        "each from a random start with randomized appearance. Appends after episodes already in --out.",
    )
    rec.add_argument("--out", required=True, help="folder to write episode_NNN/ into")
    rec.add_argument("--episodes", type=int, required=True, metavar="N", help="number of episodes")
    rec.add_argument("--track", default="oval", metavar="NAMES",
                     help=f"track(s), comma-separated, or all; episodes go round-robin over them. {TRACK_HELP} "
                     "(default oval)")
    rec.add_argument("--both-directions", action="store_true", help="add each track's other direction")
    rec.add_argument("--fps", type=float, default=30.0, help="control steps (frames) per second (default 30)")
    rec.add_argument("--size", default="360x640", metavar="HxW", help="frame size (default 360x640)")
    rec.add_argument("--seconds", type=float, default=20.0, metavar="S", help="episode length (default 20)")
    rec.add_argument("--seed", type=int, default=0, metavar="K", help="seed of starts and appearances (default 0)")
    rec.add_argument("--speed", type=float, default=1.2, help="expert's nominal speed in m/s (default 1.2)")
    rec.add_argument("--no-randomize", action="store_true", help="one fixed appearance for every episode")
    rec.set_defaults(func=run_record)

    ev = sub.add_parser(
        "eval",
        help="drive a policy in closed loop and report laps, cross-track error, off-track events",
        description="Closed-loop evaluation: the policy drives at its own fps in simulated time; every "
        "--replan-every steps it sees the camera frame and the previous command and returns a chunk.",
    )
    ev.add_argument("--model", required=True, metavar="PATH",
                    help="checkpoint (LeRobot pretrained dir or .pth) or export bundle")
    ev.add_argument("--config", default=None, metavar="CONFIG.json",
                    help="config.json for a weights-only .pth checkpoint (default: the one beside it)")
    ev.add_argument("--backend", default="auto", metavar="NAME",
                    help="torch, onnx, onnx-int8, torch-int8, litert-int8, litert-fp16, litert (default auto: a "
                    "bundle's HEF when a Hailo device is present, else its fastest model for this CPU, "
                    "litert-int8 on a Pi 5, onnx-int8 on x86; torch for a checkpoint)")
    ev.add_argument("--track", default="oval", help=f"track name (default oval): {TRACK_HELP}")
    ev.add_argument("--tracks", default=None, metavar="NAMES",
                    help="several tracks, comma-separated, or all (both directions of every track): a table per "
                    "track marked seen/unseen in training, and one figure (--plot)")
    ev.add_argument("--holdout", action="store_true",
                    help="only tracks (neither direction) and appearance seeds the training data did not hold; "
                    "refuses a seen track. Default tracks: every unseen one")
    ev.add_argument("--data", default=None, metavar="DIR",
                    help="the training episodes, when the model does not record what it was trained on")
    ev.add_argument("--seconds", type=float, default=60.0, metavar="S", help="simulated seconds (default 60)")
    ev.add_argument("--seed", type=int, default=12345, help="appearance seed of the world (default 12345)")
    ev.add_argument("--replan-every", type=int, default=1, metavar="K", help="steps per inference (default 1)")
    ev.add_argument("--size", default=None, metavar="HxW", help="camera resolution (default: the model's input)")
    ev.add_argument("--json", default=None, metavar="FILE", help="write the result as JSON")
    ev.add_argument("--plot", default=None, metavar="FILE.png", help="save a top-down plot of the path")
    ev.set_defaults(func=run_eval)

    be = sub.add_parser(
        "bench",
        help="render and step speed of the simulator",
        description="Frames/s of the renderer and steps/s of the physics on one core.",
    )
    be.add_argument("--size", action="append", default=None, metavar="HxW",
                    help="frame size; repeat for several (default 360x640 and 96x128)")
    be.add_argument("--track", default="oval", help="track name (default oval)")
    be.add_argument("--seconds", type=float, default=1.0, help="timing per measurement (default 1)")
    be.set_defaults(func=run_bench)


def run_record(args: argparse.Namespace) -> int:
    tracks = _track_list(args.track, args.both_directions)
    from edgeact.sim.record import record_episodes

    size = parse_size(args.size)

    print(
        f"recording {args.episodes} episode(s) of {args.seconds:g} s at {args.fps:g} fps, {size[0]}x{size[1]}, "
        f"track(s) {', '.join(tracks)} → {args.out}",
        flush=True,
    )
    results = record_episodes(
        args.out,
        args.episodes,
        track=tracks,
        fps=args.fps,
        image_size=size,
        seconds=args.seconds,
        seed=args.seed,
        target_speed=args.speed,
        randomize=not args.no_randomize,
        progress=lambda msg: print(msg, flush=True),
    )
    frames = sum(r.frames for r in results)
    print(f"done: {len(results)} episode(s), {frames} frames in {args.out}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    if args.tracks is not None or args.holdout:
        return _run_eval_tracks(args)
    import edgeact
    from edgeact.sim.evaluate import evaluate
    from edgeact.sim.track import make_track

    size = parse_size(args.size) if args.size else None
    make_track(args.track)  # an unknown track fails before the model loads
    options = {"config_path": args.config} if args.config else {}
    backend = edgeact.load_policy(args.model, backend=args.backend, **options)
    try:
        result = evaluate(
            backend,
            track=args.track,
            seconds=args.seconds,
            seed=args.seed,
            replan_every=args.replan_every,
            render_size=size,
            plot=args.plot,
            json_path=args.json,
            progress=lambda msg: print(msg, flush=True),
        )
    finally:
        backend.close()
    print(result.summary())
    if args.json:
        print(f"wrote {args.json}")
    if args.plot:
        print(f"wrote {args.plot}")
    return 0


def _run_eval_tracks(args: argparse.Namespace) -> int:
    from edgeact.sim.coverage import coverage_of_episodes, coverage_of_model

    size = parse_size(args.size) if args.size else None
    if args.seconds <= 0:
        raise ConfigError("--seconds must be positive")
    tracks = _track_list(args.tracks) if args.tracks is not None else None
    try:
        coverage = coverage_of_episodes(args.data) if args.data else coverage_of_model(args.model)
    except ConfigError:
        if args.holdout:
            raise
        coverage = None  # seen/unseen shows as "?"
    if args.holdout:
        assert coverage is not None  # a missing record raised above
        tracks = coverage.held_out(tracks)
    if tracks is None:
        tracks = _track_list("all")
    import json

    import edgeact
    from edgeact.fileio import atomic_write_text
    from edgeact.sim.suite import evaluate_tracks, format_table, plot_runs, summary_rows

    options = {"config_path": args.config} if args.config else {}
    backend = edgeact.load_policy(args.model, backend=args.backend, **options)
    try:
        print(f"{len(tracks)} track(s), {args.seconds:g} s each"
              + (f"; trained on {', '.join(coverage.tracks)} ({coverage.source})" if coverage else ""), flush=True)
        runs = evaluate_tracks(backend, tracks, seconds=args.seconds, seed=args.seed, coverage=coverage,
                               replan_every=args.replan_every, render_size=size,
                               progress=lambda msg: print(msg, flush=True))
    finally:
        close = getattr(backend, "close", None)
        if close:
            close()
    print()
    print(format_table(runs))
    if args.json:
        atomic_write_text(Path(args.json), json.dumps({"tracks": [r.to_json() for r in runs],
                                                       "summary": summary_rows(runs)}, indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.plot:
        plot_runs(runs, args.plot, title=f"{args.model} ({backend.name}), {args.seconds:g} s per track")
        print(f"wrote {args.plot}")
    return 0


def run_bench(args: argparse.Namespace) -> int:
    sizes = [parse_size(s) for s in args.size] if args.size else None
    from edgeact.sim.bench import bench, format_table

    print(format_table(bench(sizes, track=args.track, seconds=args.seconds)))
    return 0
