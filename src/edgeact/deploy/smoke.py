"""Runs ON the Pi after a copy: does the bundle load and give a chunk with this backend, how fast?

    python -m edgeact.deploy.smoke BUNDLE --backend onnx-int8     # prints one JSON line

A bundle that fails here never becomes ``current``. Torch-free for the ONNX backends.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any


def synthetic_frame(height: int, width: int) -> Any:
    """A smooth gradient with some structure: not all zeros, so a broken normalization shows as NaN/inf."""
    import numpy as np

    y, x = np.mgrid[0:height, 0:width]
    frame = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y) % 256], axis=-1)
    return frame.astype(np.uint8)


def smoke_check(bundle: str | Path, backend: str = "auto") -> dict[str, Any]:
    """Load ``bundle``, run one warm-up and one timed chunk on a synthetic frame; raise on a bad output."""
    import numpy as np

    from edgeact.backends.registry import load_backend
    from edgeact.cpu import inference_threads
    from edgeact.errors import BackendError
    from edgeact.version import __version__

    t0 = time.perf_counter()
    policy = load_backend(str(bundle), backend, threads=inference_threads())
    load_ms = (time.perf_counter() - t0) * 1e3
    try:
        spec = policy.spec
        frame = synthetic_frame(*spec.image_size)
        state = np.zeros(spec.state_dim, np.float32)
        policy.predict_chunk(frame, state)
        t0 = time.perf_counter()
        chunk = policy.predict_chunk(frame, state)
        latency_ms = (time.perf_counter() - t0) * 1e3
    finally:
        policy.close()
    expected = (spec.chunk_size, spec.action_dim)
    if tuple(chunk.shape) != expected or not np.isfinite(chunk).all():
        raise BackendError(f"{bundle}: the {policy.name} model gave a chunk of shape {tuple(chunk.shape)} "
                           f"(expected {expected}) or with NaN/inf values; re-export the bundle")
    result = {"backend": policy.name, "load_ms": round(load_ms, 1), "latency_ms": round(latency_ms, 2),
              "chunk": list(expected), "image_size": list(spec.image_size), "edgeact_version": __version__}
    hw_arch = getattr(policy, "hw_arch", None)  # a Hailo backend: the board whose HEF it runs
    if hw_arch:
        result["hw_arch"] = hw_arch
    return result


def main(argv: list[str] | None = None) -> int:
    from edgeact.errors import EdgeactError

    parser = argparse.ArgumentParser(prog="python -m edgeact.deploy.smoke", description=__doc__)
    parser.add_argument("bundle")
    parser.add_argument("--backend", default="auto")
    args = parser.parse_args(argv)
    try:
        result = smoke_check(args.bundle, args.backend)
    except EdgeactError as err:
        print(json.dumps({"error": str(err)}))
        return 2
    except Exception as err:  # noqa: BLE001 - a model that crashes the runtime is what this check is for
        print(json.dumps({"error": f"{type(err).__name__}: {err}"}))
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
