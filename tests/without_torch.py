"""Running code as the Pi would: a fresh interpreter in which importing torch (or another named module) fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def run_without(code: str, *args: str, blocked: tuple[str, ...] = ("torch",),
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (with ``args`` as sys.argv[1:]) importing edgeact from this checkout's src/;
    every module in ``blocked`` raises ImportError when imported."""
    prologue = f"import sys\nsys.path.insert(0, {str(SRC)!r})\n" + "".join(
        f"sys.modules[{name!r}] = None\n" for name in blocked)
    return subprocess.run([sys.executable, "-c", prologue + code, *args], capture_output=True, text=True,
                          timeout=timeout)


def predict_without_torch(bundle: str | Path, backends: tuple[str, ...], frame_shape: tuple[int, ...],
                          chunk_shape: tuple[int, ...]) -> subprocess.CompletedProcess[str]:
    """Load each of ``backends`` from ``bundle`` and predict one chunk, with torch blocked; prints 'ok'."""
    code = (
        "import numpy as np\n"
        "import edgeact\n"
        f"for name in {tuple(backends)!r}:\n"
        "    b = edgeact.load_policy(sys.argv[1], backend=name)\n"
        f"    out = b.predict_chunk(np.zeros({tuple(frame_shape)!r}, np.uint8), np.zeros(2, np.float32))\n"
        f"    assert out.shape == {tuple(chunk_shape)!r}, out.shape\n"
        "print('ok')\n"
    )
    return run_without(code, str(bundle))
