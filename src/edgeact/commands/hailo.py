"""`edgeact hailo export|lint|calib|compile|emulate|check`: the Hailo path (Hailo-8L, Hailo-8, Hailo-10H)."""

from __future__ import annotations

import argparse

PRECISIONS = ("a8_w8", "a16_w16", "mixed")
HW_ARCHS = ("hailo8l", "hailo8", "hailo10h")  # edgeact.backends.hailo_part.BOARDS (not imported: a thin CLI)
HW_ARCH_HELP = ("the board: hailo8l (AI Kit, AI HAT+ 13 TOPS), hailo8 (AI HAT+ 26 TOPS): DFC 3.x, HailoRT 4.x; "
                "hailo10h (AI HAT+ 2): DFC 5.x, HailoRT 5.x (default %(default)s)")
MODE_HELP = "which Hailo part (default: the bundle's only one; split when it has both)"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "hailo",
        help="Hailo-8L/8/10H: Hailo-ready export, lint, calibration, compile (DFC), precision emulation, device check",
        description=(
            "The Hailo AI HAT path: `export` adds NPU + host graphs to a bundle, `lint` checks a graph against the "
            "parser's known constraints, `calib` writes the optimizer's calibration set, `emulate` tells which "
            "precision drives before compiling, `compile` writes the model script and runs the Dataflow Compiler "
            "(or prints its command lines), `check` inspects the Pi's HailoRT and device."
        ),
    )
    sub = p.add_subparsers(dest="hailo_command", required=True, metavar="STEP")

    e = sub.add_parser("export", help="add hailo/<mode>/ (NPU graph for the parser + host graph) to a bundle")
    e.add_argument("bundle")
    e.add_argument(
        "--mode",
        choices=("split", "full"),
        default="split",
        help="split (default): backbone on the NPU, transformer on the CPU; full: the whole policy on the NPU",
    )
    e.add_argument("--frames", metavar="EPISODES", help="episodes for the parity check (default: synthetic frames)")
    e.add_argument("--tolerance", type=float, default=1e-4, help="max |npu+host - torch| allowed (default 1e-4)")
    e.set_defaults(func=run_export)

    lint = sub.add_parser("lint", help="check an ONNX graph against the Hailo parser's known constraints")
    lint.add_argument("model", nargs="?", help="ONNX file (e.g. BUNDLE/hailo/split/edgeact_act.onnx)")
    lint.add_argument("--rules", action="store_true", help="print the rules and where each comes from")
    lint.set_defaults(func=run_lint)

    c = sub.add_parser(
        "calib", help="calibration frames (raw 0-255 RGB NHWC float32) spread over episodes and steering"
    )
    c.add_argument("bundle")
    c.add_argument("--episodes", required=True, metavar="DIR")
    c.add_argument("--frames", type=int, default=1024, help="frames to draw (default 1024)")
    c.add_argument("--out", required=True, help="calib.npy (.npz when the NPU graph has several inputs)")
    c.add_argument("--mode", choices=("split", "full"), default=None, help=MODE_HELP)
    c.set_defaults(func=run_calib)

    m = sub.add_parser(
        "compile", help="model script + Dataflow Compiler -> HEF in the bundle (or the DFC command lines)"
    )
    m.add_argument("bundle")
    m.add_argument("--calib", help="calibration file from `edgeact hailo calib`")
    m.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="a16_w16",
        help="a16_w16 (default: what drove in public ACT-on-Hailo tests), a8_w8, "
        "or mixed (emulation picks the 16-bit layers)",
    )
    m.add_argument("--hw-arch", choices=HW_ARCHS, default="hailo8l", help=HW_ARCH_HELP)
    m.add_argument(
        "--optimization-level", type=int, default=2, metavar="N", help="DFC optimization level 0-4 (default 2)"
    )
    m.add_argument("--mode", choices=("split", "full"), default=None, help=MODE_HELP)
    m.add_argument("--episodes", metavar="DIR", help="held-out frames for --emulate and mixed (default synthetic)")
    m.add_argument(
        "--emulate", action="store_true", help="also run the DFC's SDK_QUANTIZED emulation and report the action error"
    )
    m.add_argument("--hef", help="register a HEF compiled by hand with the printed command lines instead of compiling")
    m.add_argument("--dfc-version", help="with --hef: the DFC version that compiled it (tells the Pi which HailoRT "
                   "it needs)")
    m.set_defaults(func=run_compile)

    em = sub.add_parser("emulate", help="action error and closed-loop score per precision, no DFC or HAT needed")
    em.add_argument("bundle")
    em.add_argument("--calib", required=True, help="calibration file from `edgeact hailo calib`")
    em.add_argument("--precision", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    em.add_argument("--mode", choices=("split", "full"), default=None, help=MODE_HELP)
    em.add_argument("--episodes", metavar="DIR", help="episodes whose held-out split scores the action error")
    em.add_argument("--heldout", type=int, default=32, help="held-out frames (default 32)")
    em.add_argument(
        "--weights",
        choices=("per-tensor", "per-channel"),
        default="per-tensor",
        help="weight scales: per-tensor (Hailo's, default) or per-channel (an optimistic bound)",
    )
    em.add_argument("--sim", nargs="+", default=[], metavar="TRACK", help="also drive the simulator (oval, winding)")
    em.add_argument("--sim-seconds", type=float, default=45.0)
    em.add_argument("--json", help="write the results here")
    em.set_defaults(func=run_emulate)

    k = sub.add_parser("check", help="on the Pi: the board, packages, driver, HailoRT, firmware, PCIe link, and the "
                       "bundle's HEF for this board")
    k.add_argument("bundle", nargs="?")
    k.set_defaults(func=run_check)


def run_export(args: argparse.Namespace) -> int:
    from edgeact.hailo.export import export_hailo

    export_hailo(args.bundle, args.mode, frames=args.frames, tolerance=args.tolerance)
    return 0


def run_lint(args: argparse.Namespace) -> int:
    from edgeact.errors import ConfigError
    from edgeact.hailo.lint import lint_model, rules_table

    if not args.model and not args.rules:
        raise ConfigError("give an ONNX file to lint, or --rules")
    if args.rules:
        print(rules_table())
        if not args.model:
            return 0
    report = lint_model(args.model)
    print(report.format())
    return 0 if report.passed else 1


def run_calib(args: argparse.Namespace) -> int:
    from edgeact.backends.hailo_part import resolve_mode
    from edgeact.hailo.calib import build_calibration, save_calibration

    calib = build_calibration(args.bundle, args.episodes, args.frames, resolve_mode(args.bundle, args.mode))
    out = save_calibration(calib, args.out)
    print(calib.coverage.format())
    layers = ", ".join(f"{k} {list(v.shape)}" for k, v in calib.arrays.items())
    print(f"wrote {out} ({layers}, float32 NHWC, raw 0-255 RGB)")
    return 0


def run_compile(args: argparse.Namespace) -> int:
    from edgeact.errors import ConfigError
    from edgeact.hailo.compile import compile_bundle, import_hef

    if args.hef:
        import_hef(args.bundle, args.hef, args.mode, args.hw_arch, args.precision, args.dfc_version)
        return 0
    if not args.calib:
        raise ConfigError(
            "--calib is required to compile (make it with `edgeact hailo calib BUNDLE --episodes DIR --out calib.npy`)"
        )
    compile_bundle(
        args.bundle,
        args.calib,
        args.precision,
        args.hw_arch,
        mode=args.mode,
        optimization_level=args.optimization_level,
        episodes=args.episodes,
        emulate=args.emulate,
    )
    return 0


def run_emulate(args: argparse.Namespace) -> int:
    from edgeact.backends.hailo_part import resolve_mode
    from edgeact.fileio import atomic_write_json
    from edgeact.hailo.emulate import emulate_bundle

    results = emulate_bundle(
        args.bundle,
        args.calib,
        tuple(args.precision),
        mode=resolve_mode(args.bundle, args.mode),
        episodes=args.episodes,
        heldout=args.heldout,
        weights=args.weights,
        sim_tracks=tuple(args.sim),
        sim_seconds=args.sim_seconds,
    )
    print(_table(results, args.sim))
    if args.json:
        atomic_write_json(
            args.json,
            {
                name: {
                    "action_error": r.action_error.to_json() if r.action_error else None,
                    "sixteen_bit_layers": r.sixteen_bit_layers,
                    "sim": r.sim,
                }
                for name, r in results.items()
            },
        )
    return 0


def _table(results, tracks) -> str:
    head = "| precision | action error (worst mean % of range) | 16-bit layers |" + "".join(
        f" {t}: laps / mean cross-track / off-track |" for t in tracks
    )
    rows = [head, "|" + "---|" * (3 + len(tracks))]
    for name, r in results.items():
        err = f"{r.action_error.worst_mean_pct:.3f}%" if r.action_error else "reference"
        layers = str(len(r.sixteen_bit_layers)) if name == "mixed" else ("all" if name == "a16_w16" else "-")
        sims = "".join(
            f" {r.sim[t]['laps']:.2f} / {r.sim[t]['mean_cross_track_m']:.3f} m / {r.sim[t]['off_track_events']} |"
            for t in tracks
            if t in r.sim
        )
        rows.append(f"| {name} | {err} | {layers} |{sims}")
    return "\n".join(rows)


def run_check(args: argparse.Namespace) -> int:
    from edgeact.doctor import FAIL, format_checks
    from edgeact.hailo.check import run_check as check

    checks = check(args.bundle)
    print(format_checks(checks))
    return 1 if any(c.status == FAIL for c in checks) else 0
