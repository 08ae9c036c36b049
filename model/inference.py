"""A fast inference path for the fused recurrence: the whole Euler loop in one compiled C call.

The step is the one of ``model.recurrence`` (paper eqs. 6–7 in block form)::

    z_{t+1} = z_t + ε · tanh(B z_t + u_t),      u_t = U x_t + b,      B = A − γ I.

Run op by op (eager or TorchScript), every one of the T steps dispatches an ``addmm``, a ``tanh`` and
an ``add``; at batch 1 the arithmetic of a step (a D × D matrix–vector product, D = 256 for pixel
MNIST) is far smaller than the cost of those dispatches; at batch 8–64 the dispatches still cost
about as much as the GEMM, and the GEMM is a poor shape (few rows, re-reading B every step).
``FastRecurrence`` instead hands the whole loop to a small C kernel (``model/fast_recurrence.c``)::

    for each block of ≤ 6 batch rows:                    (rows never interact: z_{t+1}[r] needs z_t[r])
        for t in 0 … T−1:   a ← b + x_t Uᵀ + z Bᵀ;     z ← z + ε · tanh(a)

Bᵀ is packed once, when the path is built (``pack_panels``), into panels of 8 columns and stays in
L2 cache; the block's states stay in L1 for
all T steps; each step is a register-blocked product (rows × panels of accumulators chosen per block
height so that enough independent FMAs hide their latency within 16 vector registers), with the
tanh update fused into its epilogue and the state double-buffered, with no per-step dispatch. The
drive u_t is formed inside the loop from the input x_t (m values, 1 for pixel MNIST and 3 for
CIFAR-10, against D = 256): m multiply-adds per state entry instead of reading a precomputed
(N, T, D) drive back from memory, and the whole batch is one call (one release of the GIL).

The fast path cannot drift from the model's definition of the step: B comes from ``step_coupling``
(which includes any damping rule, and is B̃ for the IMEX form: ``model.afrnn``); U and b are read
from the input weights and the layers' biases and checked, when the path is built, against the
model's own ``input_drive`` on a random input (a model whose drive is not of that form keeps its
forward); z₀ and the readout are the model's own exported ``initial_state`` and ``readout``. ``tanh``
in the kernel is a rational minimax approximation (the one of Eigen's ``ptanh_float``: relative error
below 1e-6 on float32), so the result equals the reference forward to float32 rounding, not bit for
bit (tested in ``tests/model/test_inference_path.py``).

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
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                   ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_float]
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


def affine_drive(module: torch.nn.Module) -> Tuple[Optional[Tuple[Tensor, Tensor]], str]:
    """((Uᵀ (m, D), b (D)), "") of the input drive u_t = U x_t + b, or (None, why).

    U is ``weight_in`` on the first layer's rows and zero below the others, b the layers' biases in
    order (``AFRNN.input_drive``); the pair is checked against the module's own ``input_drive`` on a
    random input, so that a model whose drive is defined otherwise is refused, not approximated."""
    weight_in = getattr(module, "weight_in", None)
    layers = getattr(module, "layers", None)
    if weight_in is None or layers is None:
        return None, "the model has no weight_in and layers (not a block-form AFRNN)"
    with torch.inference_mode():
        # named_children: a loaded TorchScript ModuleList cannot be iterated from Python
        bias = torch.cat([layer.bias for _, layer in layers.named_children()]).contiguous()
        input_t = weight_in.new_zeros(weight_in.shape[1], bias.shape[0])
        input_t[:, :weight_in.shape[0]] = weight_in.t()
        x = torch.randn(2, 3, weight_in.shape[1], generator=torch.Generator().manual_seed(0)).to(weight_in)
        expected = module.input_drive(x)
        if expected.shape != (2, 3, bias.shape[0]) or not torch.allclose(x @ input_t + bias, expected,
                                                                         rtol=1e-5, atol=1e-6):
            return None, "input_drive is not weight_in x + the layers' biases"
    return (input_t, bias), ""


PANEL_COLUMNS = 8                  # VL in the kernel: the columns of one panel of Bᵀ (one AVX vector)


def pack_panels(coupling_t: Tensor) -> Tensor:
    """Bᵀ (D, D) as the kernel reads it: panels of ``PANEL_COLUMNS`` columns, (⌈D/8⌉, D, 8), zero past
    column D, so that ``packed[p, k, j] = Bᵀ[k, 8p + j]``; torch's CPU allocations are 64-byte aligned,
    which the kernel's aligned vector loads need."""
    d = coupling_t.shape[0]
    panels = -(-d // PANEL_COLUMNS)
    padded = coupling_t.new_zeros(d, panels * PANEL_COLUMNS)
    padded[:, :d] = coupling_t
    return padded.reshape(d, panels, PANEL_COLUMNS).permute(1, 0, 2).contiguous()


class FastRecurrence:
    """``forward(x)`` of a block-form AFRNN (eager or TorchScript) with the Euler loop in C.

    Built by ``from_module``; holds Bᵀ (packed), Uᵀ, b and ε as they were when it was built (inference
    only: rebuild it after the weights change). ``__call__(x)`` takes x of shape (N, T, input_size), float32
    on the CPU, and returns the readout at the last step, (N, output_size), as ``module(x)`` does.
    """

    def __init__(self, module: torch.nn.Module, coupling_t: Tensor, input_t: Tensor, bias: Tensor,
                 epsilon: float, kernel: ctypes.CDLL):
        self.module = module
        self.panels = pack_panels(coupling_t)
        if self.panels.data_ptr() % 32:
            raise ValueError("the packed Bᵀ is not 32-byte aligned")
        self.input_t = input_t
        self.bias = bias
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
        drive, why = affine_drive(module)
        if drive is None:
            return None, why
        kernel, why = load_kernel()
        if kernel is None:
            return None, why or "kernel unavailable"
        return cls(module, coupling_t, *drive, float(module.epsilon), kernel), ""

    def final_state(self, x: Tensor) -> Tensor:
        """z_T, shape (N, D), for x of shape (N, T, input_size)."""
        if (x.dim() != 3 or x.shape[2] != self.input_t.shape[0] or x.dtype != torch.float32
                or x.device.type != "cpu"):
            raise ValueError(f"expected x of shape (batch, steps, {self.input_t.shape[0]}), float32 on the "
                             f"CPU, got {list(x.shape)} {x.dtype} on {x.device}")
        n, steps = x.shape[0], x.shape[1]
        x = x.contiguous()
        with torch.inference_mode():
            z = self.module.initial_state(n).contiguous().clone()             # (N, D), updated in place
            if self._loop(x.data_ptr(), z.data_ptr(), self.panels.data_ptr(), self.input_t.data_ptr(),
                          self.bias.data_ptr(), n, steps, z.shape[1], x.shape[2], self.epsilon) != 0:
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
