"""`edgeact quantize BUNDLE --calib EPISODES`: int8 models for the CPU backends, with an accuracy report."""

from __future__ import annotations

import argparse

INT8_BACKENDS = ("onnx-int8", "torch-int8")
LITERT = "litert"  # --backends litert: the three LiteRT models (int8, fp16, fp32) for XNNPACK


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "quantize",
        help="static int8 quantization (ONNX Runtime QDQ and PyTorch int8) calibrated on episode frames",
        description=(
            "Write model.int8.onnx (ONNX Runtime static QDQ, per-channel int8 weights) and "
            "model.int8.torchscript.pt (PyTorch int8) into the bundle, and, for --target pi5, the LiteRT models "
            "for XNNPACK (model.litert-int8/-fp16/.tflite, with a delegation report); print the action error of "
            "each against fp32 on held-out frames: mean |int8 - fp32| / (action max - action min) per action."
        ),
    )
    p.add_argument("bundle", help="bundle directory written by `edgeact export`")
    p.add_argument("--calib", metavar="EPISODES",
                   help="episodes to calibrate on (held-out episodes give the accuracy report); "
                        "without it synthetic frames are used, which is fine for speed tests only")
    p.add_argument("--frames", type=int, default=64, help="calibration frames (default 64)")
    p.add_argument("--heldout", type=int, default=32, help="held-out frames for the accuracy report (default 32)")
    p.add_argument("--target", choices=("pi5", "x86", "auto"), default="pi5",
                   help="CPU that will run it: pi5 (ARM, S8S8, default), x86 (U8S8), auto (this machine)")
    p.add_argument("--keep-float", nargs="+", default=[], metavar="NODE",
                   help="ONNX node names (or glob patterns, e.g. '*/decoder/*') to leave in float")
    p.add_argument("--auto-keep", type=int, default=0, metavar="K",
                   help="find the K layers whose quantization costs most accuracy and leave them in float")
    p.add_argument("--auto-keep-among", nargs="+", default=[], metavar="PATTERN",
                   help="limit the --auto-keep search to these node names / glob patterns (faster)")
    p.add_argument("--int8-attention", action="store_true",
                   help="also quantize the attention core (q @ k^T, softmax, weights @ V); default float")
    p.add_argument("--method", choices=("minmax", "percentile", "entropy"), default="minmax",
                   help="ONNX activation calibration (default minmax)")
    p.add_argument("--backends", nargs="+", choices=(*INT8_BACKENDS, LITERT), default=None,
                   help="which models to build (default: onnx-int8 and torch-int8, and litert for the pi5 target)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgeact.export.accuracy import ACCEPT_PERCENT
    from edgeact.export.quantize_onnx import resolve_target

    failed = []
    backends = args.backends or [*INT8_BACKENDS, *([LITERT] if resolve_target(args.target) == "pi5" else [])]
    if "onnx-int8" in backends:
        from edgeact.export.quantize_onnx import quantize_bundle

        result = quantize_bundle(args.bundle, args.calib, frames=args.frames, heldout=args.heldout,
                                 target=args.target, keep_float=args.keep_float, auto_keep=args.auto_keep,
                                 auto_keep_among=args.auto_keep_among, method=args.method,
                                 float_softmax=not args.int8_attention)
        if not result.accuracy.passed:
            failed.append("onnx-int8")
    if "torch-int8" in backends:
        from edgeact.export.quantize_torch import quantize_torch_bundle

        if args.keep_float or args.auto_keep:
            print("note: --keep-float/--auto-keep apply to onnx-int8 only")
        tresult = quantize_torch_bundle(args.bundle, args.calib, frames=min(args.frames, 32), heldout=args.heldout,
                                        target=args.target)
        if not tresult.accuracy.passed:
            failed.append("torch-int8")
    if LITERT in backends:
        failed += _litert(args, explicit=args.backends is not None)
    if failed:
        print(f"warning: {', '.join(failed)} above the {ACCEPT_PERCENT:g}% action-error bound; try --auto-keep 3 or "
              "--method percentile")
    return 0


def _litert(args: argparse.Namespace, explicit: bool) -> list[str]:
    """Build the LiteRT models; without ai-edge-litert, an error when asked for, a note when only a default."""
    from edgeact.backends.litert_backend import runtime_available

    if not runtime_available():
        if explicit:
            from edgeact.errors import ExportError

            raise ExportError("--backends litert needs ai-edge-litert: pip install 'edgeact[litert]'")
        print("note: no LiteRT models for the Pi 5 (pip install 'edgeact[litert]' to build them; XNNPACK's int8 is "
              "the Pi 5's fast path, see docs/PI5.md)")
        return []
    from edgeact.export.quantize_litert import litert_bundle

    if args.keep_float or args.auto_keep:
        print("note: --keep-float/--auto-keep apply to onnx-int8 only")
    results = litert_bundle(args.bundle, args.calib, frames=args.frames, heldout=args.heldout)
    return [r.backend for r in results if not r.accuracy.passed]
