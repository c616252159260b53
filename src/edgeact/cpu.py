"""This machine's CPU as edgeact uses it: physical cores, thread counts, ONNX Runtime session
options and PyTorch's quantized engine. Neutral (imports nothing of edgeact, and onnxruntime or
torch only inside the function that needs it), so the backends, the exporter, the benchmark
and the runtime share one setting each.

Session settings, tuned for the latency of one synchronous call:

- ``intra_op_num_threads`` = physical cores (4 on a Pi 5; SMT siblings only contend for
  the same FMA/dot-product units), ``inter_op_num_threads`` = 1, sequential execution (the
  graph is a chain; parallelism is inside each op);
- ``graph_optimization_level`` = ``ORT_ENABLE_ALL`` (constant folding, Conv/Add/Relu and
  QDQ fusions into QLinearConv/MatMulInteger kernels, layout transforms);
- spinning on (``session.intra_op.allow_spinning`` = 1): worker threads spin briefly between
  the parallel sections of one run instead of sleeping, which removes wake-up latency from
  every op. It costs CPU while a run is in progress, not between runs. ``spin=False`` turns
  it off when other busy threads share the cores;
- denormals flushed to zero (no slow paths on tiny activations).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from edgeact.errors import BackendError


def physical_cores() -> int:
    """Physical cores available to this process (SMT siblings counted once)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return max(1, (os.cpu_count() or 2) // 2)
    cores = set()
    for cpu in cpus:
        siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        try:
            cores.add(siblings.read_text().strip())
        except OSError:
            cores.add(str(cpu))
    return max(1, len(cores))


def session_options(threads: int | None = None, spin: bool = True) -> Any:
    """``onnxruntime.SessionOptions`` for one synchronous call at a time (see the module docstring)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or physical_cores()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.add_session_config_entry("session.set_denormal_as_zero", "1")
    options.log_severity_level = 3
    return options


def inference_threads() -> int:
    """Threads for the backend under the runtime: every physical core but one.

    The free core keeps the control loop, camera and serial threads on time. Measured on a
    2-core machine at 100 Hz with the 360x640 int8 model: with both cores given to ONNX
    Runtime, 8 control deadlines in 60 s were missed by 10-30 ms (a normal-priority thread
    holding the GIL was starved by the spinning inference threads while the control thread
    waited for the GIL); with one, none were, at 37 ms instead of 21 ms per inference,
    which a 100-step chunk absorbs.
    """
    return max(1, physical_cores() - 1)


def host_engine() -> str:
    """The quantized engine for this machine: QNNPACK on ARM, the x86 engine (FBGEMM+oneDNN) otherwise."""
    import torch

    supported = torch.backends.quantized.supported_engines
    if platform.machine().lower() in ("aarch64", "arm64", "armv8l") and "qnnpack" in supported:
        return "qnnpack"
    for engine in ("x86", "fbgemm", "qnnpack"):
        if engine in supported:
            return engine
    raise BackendError(f"this PyTorch build has no quantized engine (supported: {supported})")


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_MAX = 32 * 2**20  # glibc's ceiling for M_MMAP_THRESHOLD on 64-bit


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed blocks (up to 32 MiB each) for reuse instead of unmapping them.

    A training step frees and allocates the same few-MiB tensors every step (activations,
    gradients, bf16 copies of the weights). By default glibc serves large blocks with mmap and
    hands freed memory back to the OS, so every step page-faults its tensors in again; keeping
    it measured 5% of a tiny-preset step on 2 cores. The price is that the process keeps its
    peak heap. Returns False (and changes nothing) where the C library is not glibc.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    import ctypes

    libc = ctypes.CDLL(None)
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**30))
