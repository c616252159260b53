"""`edgeact export --checkpoint CKPT --out BUNDLE`: checkpoint -> bundle with model.onnx and manifest.json."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a checkpoint to a bundle (LeRobot files + model.onnx + manifest.json), parity-checked",
        description=(
            "Export the whole inference path (uint8 NHWC RGB frame + raw state -> real-unit action chunk) to "
            "ONNX (opset 17, batch 1, static shapes), check it against PyTorch, and write a bundle directory "
            "that every backend loads."
        ),
    )
    p.add_argument("--checkpoint", required=True, help="LeRobot pretrained dir, edgeact checkpoint, or .pth file")
    p.add_argument("--out", required=True, help="bundle directory to write (replaced atomically)")
    p.add_argument("--frames", metavar="EPISODES", help="episodes for the parity check (default: synthetic frames)")
    p.add_argument("--parity-frames", type=int, default=8, help="observations in the parity check (default 8)")
    p.add_argument("--tolerance", type=float, default=1e-4, help="max |onnx - torch| allowed (default 1e-4)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17; ORT and Hailo's parser read 13-17)")
    p.add_argument("--exporter", choices=("torchscript", "dynamo"), default="torchscript",
                   help="torch exporter (default torchscript: folds every constant at opset 17)")
    p.add_argument("--config", help="config.json for a weights-only .pth file")
    p.add_argument("--stats", help="dataset meta/stats.json when the checkpoint carries no stats")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgeact.export.onnx_export import export_bundle

    result = export_bundle(
        args.checkpoint, args.out, frames=args.frames, n_parity=args.parity_frames, tolerance=args.tolerance,
        opset=args.opset, exporter=args.exporter, config_path=args.config, stats_path=args.stats,
    )
    print(result.summary.format())
    print(f"wrote {result.bundle} (model.onnx {result.onnx_path.stat().st_size / 1e6:.1f} MB, "
          f"parity {result.parity_max_abs_diff:.2e} on {result.parity_frames} {result.parity_source})")
    return 0
