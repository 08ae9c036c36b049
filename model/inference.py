"""A fast inference path for the fused recurrence: the whole Euler loop in one compiled C call.

The step is the one of ``model.recurrence`` (paper eqs. 6–7 in block form)::

    z_{t+1} = z_t + ε · tanh(B z_t + u_t),      u_t = U x_t + b,      B = A − γ I.

Run op by op (eager or TorchScript), every one of the T steps dispatches an ``addmm``, a ``tanh`` and
an ``add``; at batch 1 the arithmetic of a step (a D × D matrix–vector product, D = 256 for pixel
MNIST) is far smaller than the cost of those dispatches; at batch 8–64 the dispatches still cost
about as much as the GEMM, and the GEMM is a poor shape (few rows, re-reading B every step).
``FastRecurrence`` instead hands the whole loop to a small C kernel (``model/fast_recurrence.c``)::

    for each block of ≤ 6 batch rows:                    (rows never interact: z_{t+1}[r] needs z_t[r])
        for t in 0 … T−1:   a ← u_t + z Bᵀ;     z ← z + ε · tanh(a)

Bᵀ is packed once into panels of 8 columns and stays in L2 cache; the block's states stay in L1 for
all T steps; each step is a register-blocked product (rows × panels of accumulators chosen per block
height so that enough independent FMAs hide their latency within 16 vector registers), with the
tanh update fused into its epilogue and the state double-buffered,
with no per-step dispatch. Only the loop moves: the input drive u (one GEMM over all steps, per chunk of
rows whose drive fits in cache: ``chunk_rows``), z₀ and
the readout still come from the model's own exported methods (``input_drive``, ``initial_state``,
``readout``), and B from ``step_coupling`` (which includes any damping rule, and is B̃ for the IMEX
form: ``model.afrnn``), so the fast path
cannot drift from the model's definition of the step. ``tanh`` in the kernel is a rational minimax
approximation (the one of Eigen's ``ptanh_float``: relative error below 1e-6 on float32), so the
result equals the reference forward to float32 rounding, not bit for bit (tested in
``tests/model/test_inference_path.py``).

The kernel is plain C (no torch headers, no pybind), compiled at first use with the system C
compiler (``cc``/``gcc``, ``-O3 -march=native``: it is built on the machine that runs it) into a
cache directory (``AFRNN_KERNEL_DIR``, default ``~/.cache/afrnn-serving``), and called through
``ctypes``, which releases the GIL for the call. An image without a compiler ships it prebuilt for the
x86-64-v3 and -v2 levels (``python -m model.inference --prebuild DIR``; ``$AFRNN_KERNEL_PREBUILT``
names the directory) and loads the best one the CPU runs. Where there is no kernel, the model is not a
block-form simultaneous-update AFRNN (the sequential sweep, the LSTM), or its tensors are not float32
on the CPU, ``FastRecurrence.from_module`` returns ``None`` with the reason, and callers keep the
module's own forward; ``AFRNN_FAST_RECURRENCE=0`` in the environment switches the fast path off.
"""

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional, Tuple

import torch
from torch import Tensor

from model.afrnn import step_coupling

log = logging.getLogger(__name__)

# The C source beside this file (package data); its text is part of every build's cache key.
KERNEL_SOURCE_PATH = Path(__file__).with_name("fast_recurrence.c")
_KERNEL_SOURCE = KERNEL_SOURCE_PATH.read_text()

# -fno-trapping-math lets gcc vectorise the clamp in afrnn_tanh (no FP exceptions are observed here)
_CFLAGS = ("-O3", "-march=native", "-ffp-contract=fast", "-fno-math-errno", "-fno-trapping-math",
           "-std=c11", "-shared", "-fPIC")
_kernel: Optional[ctypes.CDLL] = None
_kernel_error: Optional[str] = None


def kernel_dir() -> Path:
    return Path(os.environ.get("AFRNN_KERNEL_DIR") or Path.home() / ".cache" / "afrnn-serving")


def _cpu_signature() -> str:
    """CPU model and flags: ``-march=native`` code is only valid on the CPU it was built for."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "flags")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


# Portable builds for machines without a compiler (the container image ships them prebuilt, see
# ``prebuild``): each x86-64 micro-architecture level with the /proc/cpuinfo flags it requires, best first.
PORTABLE_TARGETS: Tuple[Tuple[str, frozenset], ...] = (
    ("x86-64-v3", frozenset({"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"})),
    ("x86-64-v2", frozenset({"cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3"})),
)
PREBUILT_ENV = "AFRNN_KERNEL_PREBUILT"


def _compile(compiler: str, flags: Tuple[str, ...], path: Path) -> None:
    """Build the kernel with ``flags`` into ``path`` (atomically: concurrent builders agree)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        out = Path(tmp) / "afrnn_euler.so"
        subprocess.run([compiler, *flags, str(KERNEL_SOURCE_PATH), "-o", str(out)], check=True,
                       capture_output=True, text=True, timeout=120)
        os.replace(out, path)


def _portable_flags(target: str) -> Tuple[str, ...]:
    return tuple(f"-march={target}" if f == "-march=native" else f for f in _CFLAGS) + ("-mtune=generic",)


def prebuilt_path(directory: Path, target: str) -> Path:
    """Where ``prebuild`` puts the kernel for ``target``; the name holds a hash of source and flags."""
    key = hashlib.sha256("\n".join([_KERNEL_SOURCE, " ".join(_portable_flags(target))]).encode()
                         ).hexdigest()[:16]
    return Path(directory) / f"afrnn_euler_{key}_{target}.so"


def prebuild(directory: Path, compiler: Optional[str] = None) -> list:
    """Build the kernel for every ``PORTABLE_TARGETS`` level into ``directory`` (for images without a
    compiler: ``python -m model.inference --prebuild DIR``, then ``AFRNN_KERNEL_PREBUILT=DIR``)."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return []                                  # the levels are x86-64's; elsewhere: native or none
    compiler = compiler or os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("no C compiler (cc/gcc) on PATH")
    built = []
    for target, _flags in PORTABLE_TARGETS:
        path = prebuilt_path(directory, target)
        _compile(compiler, _portable_flags(target), path)
        built.append(path)
    return built


def _prebuilt_for_this_cpu() -> Tuple[Optional[Path], str]:
    """(the best prebuilt kernel this CPU can run, or None; why)."""
    directory = os.environ.get(PREBUILT_ENV)
    if not directory:
        return None, f"no C compiler (cc/gcc) on PATH and no prebuilt kernel (${PREBUILT_ENV} unset)"
    model, flags = cpu_flags()
    for target, required in PORTABLE_TARGETS:
        path = prebuilt_path(Path(directory), target)
        if required <= flags and path.is_file():
            return path, target
    return None, (f"no C compiler, and no kernel in {directory} that {model!r} can run (levels: "
                  f"{', '.join(t for t, _ in PORTABLE_TARGETS)})")


def load_kernel() -> Tuple[Optional[ctypes.CDLL], Optional[str]]:
    """The kernel: built once per machine and source with the system compiler (``-march=native``), or,
    without a compiler, the best prebuilt portable one (``$AFRNN_KERNEL_PREBUILT``); else
    (None, why it is unavailable)."""
    global _kernel, _kernel_error
    if _kernel is not None or _kernel_error is not None:
        return _kernel, _kernel_error
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    try:
        if compiler is not None and shutil.which(compiler) is not None:
            key = hashlib.sha256("\n".join([_KERNEL_SOURCE, " ".join(_CFLAGS), compiler, _cpu_signature()])
                                 .encode()).hexdigest()[:16]
            path = kernel_dir() / f"afrnn_euler_{key}.so"
            if not path.is_file():
                _compile(compiler, _CFLAGS, path)
        else:
            path, why = _prebuilt_for_this_cpu()
            if path is None:
                _kernel_error = why
                return None, _kernel_error
            log.info("using the prebuilt %s kernel %s", why, path)
        lib = ctypes.CDLL(str(path))
    except (OSError, subprocess.SubprocessError) as err:
        detail = getattr(err, "stderr", None) or str(err)
        _kernel_error = f"kernel build/load failed: {detail.strip()[:400]}"
        return None, _kernel_error
    fn = lib.afrnn_euler_loop
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                   ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_float]
    _kernel = lib
    return _kernel, None


def cpu_flags(cpuinfo: Optional[str] = None) -> Tuple[str, frozenset]:
    """(CPU model name, set of feature flags) from ``/proc/cpuinfo`` text (read when not given)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    model, flags = platform.processor() or platform.machine(), frozenset()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = frozenset(value.split())
    return model, flags


KERNEL_BLOCK_ROWS = 6              # MR in the kernel: the rows of one register block
DRIVE_CHUNK_BYTES = 8 << 20        # the input drive of one chunk of rows, sized to stay in cache


def chunk_rows(steps: int, state_size: int) -> int:
    """Rows per call of the C loop: as many as keep their input drive u (rows × T × D float32) within
    ``DRIVE_CHUNK_BYTES``, in whole blocks of ``KERNEL_BLOCK_ROWS``, at least one block.

    The drive is written by one GEMM and read back once by the loop. For a whole batch of pixel MNIST
    (T = 784, D = 256) it is 0.8 MB a row, 51 MB at 64 rows: it leaves the cache between the two and
    streams from memory twice. In chunks that fit, the loop reads it from cache (docs/performance.md,
    session 11).
    """
    rows = DRIVE_CHUNK_BYTES // max(1, steps * state_size * 4)
    return max(KERNEL_BLOCK_ROWS, rows - rows % KERNEL_BLOCK_ROWS)


class FastRecurrence:
    """``forward(x)`` of a block-form AFRNN (eager or TorchScript) with the Euler loop in C.

    Built by ``from_module``; holds Bᵀ and ε as they were when it was built (inference only: rebuild
    it after the weights change). ``__call__(x)`` takes x of shape (N, T, input_size), float32 on the
    CPU, and returns the readout at the last step, (N, output_size), as ``module(x)`` does.
    """

    def __init__(self, module: torch.nn.Module, coupling_t: Tensor, epsilon: float,
                 kernel: ctypes.CDLL):
        self.module = module
        self.coupling_t = coupling_t
        self.epsilon = epsilon
        self._loop = kernel.afrnn_euler_loop

    @classmethod
    def from_module(cls, module: torch.nn.Module) -> Tuple[Optional["FastRecurrence"], str]:
        """(fast path, "") or (None, why the module keeps its own forward)."""
        if os.environ.get("AFRNN_FAST_RECURRENCE", "1") == "0":
            return None, "disabled by AFRNN_FAST_RECURRENCE=0"
        for name in ("coupling_matrix", "input_drive", "initial_state", "readout"):
            if not hasattr(module, name):
                return None, f"the model has no {name}() (not a block-form AFRNN)"
        if bool(getattr(module, "sequential", True)):
            return None, "sequential (layer-by-layer) update: only the simultaneous step is fused"
        with torch.inference_mode():
            coupling_t = step_coupling(module).t().contiguous()
        if coupling_t.dtype != torch.float32 or coupling_t.device.type != "cpu":
            return None, f"weights are {coupling_t.dtype} on {coupling_t.device}, not float32 on the CPU"
        kernel, why = load_kernel()
        if kernel is None:
            return None, why or "kernel unavailable"
        return cls(module, coupling_t.clone(), float(module.epsilon), kernel), ""

    def final_state(self, x: Tensor) -> Tensor:
        """z_T, shape (N, D), for x of shape (N, T, input_size)."""
        if x.dim() != 3 or x.dtype != torch.float32 or x.device.type != "cpu":
            raise ValueError(f"expected x of shape (batch, steps, channels), float32 on the CPU, got "
                             f"{list(x.shape)} {x.dtype} on {x.device}")
        n, steps, d = x.shape[0], x.shape[1], self.coupling_t.shape[0]
        rows = chunk_rows(steps, d)
        with torch.inference_mode():
            z = self.module.initial_state(n).contiguous().clone()             # (N, D), updated in place
            for start in range(0, n, rows):
                drive = self.module.input_drive(x[start:start + rows]).contiguous()   # (rows, T, D)
                if drive.shape[2] != d:
                    raise ValueError(f"input drive has {drive.shape[2]} state entries but Bᵀ is "
                                     f"{tuple(self.coupling_t.shape)}")
                part = z[start:start + rows]                  # contiguous: whole rows of z
                if self._loop(drive.data_ptr(), part.data_ptr(), self.coupling_t.data_ptr(), part.shape[0],
                              steps, d, self.epsilon) != 0:
                    raise MemoryError("afrnn_euler_loop could not allocate its scratch buffer")
        return z

    def __call__(self, x: Tensor) -> Tensor:
        with torch.inference_mode():
            return self.module.readout(self.final_state(x))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m model.inference",
                                     description="build the portable kernels for an image without a compiler")
    parser.add_argument("--prebuild", type=Path, required=True, metavar="DIR")
    for built in prebuild(parser.parse_args().prebuild):
        print(built)
