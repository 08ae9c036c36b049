"""Benchmark of the fused block recurrence (pixel-MNIST AFRNN, 2 × 128, 784 steps).

Times one training step (forward + backward + Adam) at batch 128 for
  * the AFRNN block form (``model.paper_model('mnist', 'afrnn')``: one matmul per step) on each of its
    training paths (``model.afrnn.TRAINING_PATHS``): ``autograd`` through the per-step ops, ``fused``
    (``FusedEulerRecurrence``: one GEMM per step backward, the coupling gradient in one large GEMM),
    and ``fused-bf16`` (its GEMMs in bf16) where the CPU has bf16 instructions (avx512_bf16 or AMX),
    each with the peak resident memory one step adds (a fresh process per path),
  * ``nn.RNN`` (2 layers, 128, tanh) and ``nn.LSTM`` (1 layer, 128) with a linear head,
  * a per-layer implementation in the style of the reference code (several matmuls per step:
    each layer's own recurrence, the feedforward and the feedback are separate products),
and the batch-1 inference latency of the TorchScript AFRNN with 1 and 2 intra-op threads.

Against the machine's limits, measured in the same run:

* the training step's GFLOP/s (the recurrence's matmuls: 2·N·D² per step forward, twice that
  backward, so 3 · 2·N·D²·T in all: 39.5 GFLOP for batch 128, D = 256, T = 784) against the GEMM
  peak of ``torch.mm`` (1024², same threads), fp32 and, for ``fused-bf16``, bf16;
* batch-1 inference (784 steps, 1 thread) against the *op floor*: 784 bare batch-1 ``addmm``s of
  the same shape, i.e. what any op-by-op loop must at least spend. Candidates: the TorchScript model,
  ``torch.jit.freeze`` + ``optimize_for_inference``, and ``model.inference.FastRecurrence`` (the loop
  in one compiled C call, below the floor because it dispatches nothing per step).
  ``torch.compile`` is measured only with ``--compile`` (it unrolls the 784 steps: minutes of compile);
* batched inference (the batch sizes the service's batcher forms, 1 thread): the C loop against the
  TorchScript forward, with the C loop's GFLOP/s (``afrnn_batch{N}_torchscript_vs_fast`` > 1: C wins).

    python bench/recurrence.py            # full run (≈ 2–3 min on 2 cores)
    python bench/recurrence.py --quick    # < 45 s: training steps on 196 of the 784 steps

The last line of the output is one JSON object with the figures.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

# as training sets it (training/__init__.py): transparent huge pages for a step's large buffers
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

import torch  # noqa: E402  (after the allocator's environment)
from torch import nn

from model import paper_model  # noqa: E402
from model.afrnn import TRAINING_PATHS  # noqa: E402
from model.inference import FastRecurrence, cpu_flags  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import machine  # noqa: E402

STEPS, BATCH, HIDDEN = 784, 128, 128
QUICK_STEPS = 196                # --quick: a quarter of the sequence (ratios hold, times scale)


class ReferenceStyleAFRNN(nn.Module):
    """Two-layer AFRNN written as a per-layer cell, in the style of the reference code (a baseline).

    Every step projects the input, rebuilds each layer's antisymmetric matrix and updates the layers
    one after the other (the reference code's sequential sweep), with separate products::

        g ← g + ε tanh(E x_t + (R − Rᵀ − γI) g − Wᵀ h + b_g)
        h ← h + ε tanh(W g + (S − Sᵀ − γI) h + b_h)

    i.e. five matmuls per step plus the per-step input projection and matrix rebuilds, where the block
    form does one ``addmm`` per step after one input GEMM for the whole sequence.
    """

    def __init__(self, hidden: int = HIDDEN, classes: int = 10, epsilon: float = 0.01, gamma: float = 0.001):
        super().__init__()
        self.epsilon, self.gamma = epsilon, gamma
        self.E = nn.Linear(1, hidden)
        self.R = nn.Parameter(torch.randn(hidden, hidden) / hidden)
        self.S = nn.Parameter(torch.randn(hidden, hidden) / hidden)
        self.W = nn.Parameter(torch.randn(hidden, hidden) / hidden)
        self.b_h = nn.Parameter(torch.zeros(hidden))
        self.register_buffer("eye", torch.eye(hidden))
        self.head = nn.Linear(hidden, classes)

    def cell(self, x_t: torch.Tensor, g: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rec_g = self.R - self.R.t() - self.gamma * self.eye
        rec_h = self.S - self.S.t() - self.gamma * self.eye
        g = g + self.epsilon * torch.tanh(self.E(x_t) + g @ rec_g.t() - h @ self.W)
        h = h + self.epsilon * torch.tanh(g @ self.W.t() + h @ rec_h.t() + self.b_h)
        return g, h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = x.new_zeros(x.shape[0], self.R.shape[0])
        h = x.new_zeros(x.shape[0], self.S.shape[0])
        for t in range(x.shape[1]):
            g, h = self.cell(x[:, t], g, h)
        return self.head(h)


class TorchRNNClassifier(nn.Module):
    def __init__(self, cell: str):
        super().__init__()
        if cell == "rnn":
            self.rnn = nn.RNN(1, HIDDEN, 2, nonlinearity="tanh", batch_first=True)
        else:
            self.rnn = nn.LSTM(1, HIDDEN, 1, batch_first=True)
        self.head = nn.Linear(HIDDEN, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def time_training_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, repeats: int) -> float:
    """Median seconds of forward + backward + Adam step, after one warm-up step."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_batch1_inference(scripted: torch.jit.ScriptModule, threads: int, repeats: int) -> float:
    """Median milliseconds of one batch-1, 784-step forward of the scripted model."""
    torch.set_num_threads(threads)
    x = torch.randn(1, STEPS, 1)
    times = []
    with torch.inference_mode():
        for _ in range(5):
            scripted(x)
        for _ in range(repeats):
            start = time.perf_counter()
            scripted(x)
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def median_ms(fn, repeats: int) -> float:
    """Median milliseconds of ``fn()`` after 3 warm-up calls."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def gemm_peak_gflops(threads: int, seconds: float = 1.0, n: int = 1024,
                     dtype: torch.dtype = torch.float32) -> float:
    """``torch.mm`` of two n × n matrices of ``dtype``, GFLOP/s (2n³ per product), best of 3 windows."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = 0.0
    for _ in range(3):
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 3 or count < 2:
            a @ b
            count += 1
        best = max(best, 2 * n ** 3 * count / (time.perf_counter() - start) / 1e9)
    return best


def batch1_candidates(model: nn.Module, repeats: int, with_compile: bool) -> dict:
    """Batch-1, 784-step inference (1 thread) of each candidate and the op floor, same run."""
    torch.set_num_threads(1)
    x = torch.rand(1, STEPS, 1)
    scripted = torch.jit.script(model.eval())
    out: dict = {}
    with torch.inference_mode():
        coupling_t = model.step_coupling().t().contiguous()
        z, u = torch.zeros(1, coupling_t.shape[0]), torch.randn(1, coupling_t.shape[0])

        def op_floor():
            for _ in range(STEPS):
                torch.addmm(u, z, coupling_t)

        reference = scripted(x)
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(model.eval())))
        fast, why = FastRecurrence.from_module(scripted)
        candidates = [("torchscript", scripted), ("frozen", frozen)]
        if fast is not None:
            candidates.append(("fast", fast))
        else:
            out["fast_unavailable"] = why
        if with_compile:
            start = time.perf_counter()
            try:
                compiled = torch.compile(model)
                compiled(x)
                out["compile_s"] = round(time.perf_counter() - start, 1)
                candidates.append(("compiled", compiled))
            except Exception as err:  # any compiler failure is a result to report
                out["compile_unavailable"] = f"{type(err).__name__}: {str(err)[:200]}"
        # interleave the candidates and the floor, three rounds, and keep each one's best median
        times: dict[str, float] = {}
        for _ in range(3):
            times["op_floor"] = min(times.get("op_floor", 1e9), median_ms(op_floor, repeats))
            for name, fn in candidates:
                times[name] = min(times.get(name, 1e9), median_ms(lambda fn=fn, x=x: fn(x), repeats))
        for name, fn in candidates:
            out[f"afrnn_batch1_{name}_max_abs_diff"] = float((fn(x) - reference).abs().max())
    floor = times.pop("op_floor")
    out["op_floor_ms"] = round(floor, 3)
    out["addmm_batch1_us"] = round(1000 * floor / STEPS, 2)
    for name, ms in times.items():
        out[f"afrnn_batch1_{name}_ms"] = round(ms, 3)
        out[f"afrnn_batch1_{name}_vs_op_floor"] = round(ms / floor, 3)
    served = "fast" if "fast" in times else "torchscript"
    out["afrnn_batch1_served_path"] = served
    out["afrnn_batch1_vs_op_floor"] = out[f"afrnn_batch1_{served}_vs_op_floor"]
    return out


def batched_inference(model: nn.Module, batches: tuple[int, ...], repeats: int) -> dict:
    """784-step inference at the batch sizes the service's batcher forms (1 thread): the C loop
    (``FastRecurrence``) against the TorchScript forward, interleaved, best of 3 medians; GFLOP/s of
    the recurrence's products (2·N·D² per step)."""
    torch.set_num_threads(1)
    scripted = torch.jit.script(model.eval())
    fast, why = FastRecurrence.from_module(scripted)
    if fast is None:
        return {"batched_fast_unavailable": why}
    out: dict = {}
    with torch.inference_mode():
        for batch in batches:
            x = torch.rand(batch, STEPS, 1)
            best = {"torchscript": 1e9, "fast": 1e9}
            for _ in range(3):
                for name, fn in (("torchscript", scripted), ("fast", fast)):
                    best[name] = min(best[name], median_ms(lambda fn=fn, x=x: fn(x), repeats))
            gflops = 2 * batch * model.state_size ** 2 * STEPS / 1e6
            out[f"afrnn_batch{batch}_torchscript_ms"] = round(best["torchscript"], 3)
            out[f"afrnn_batch{batch}_fast_ms"] = round(best["fast"], 3)
            out[f"afrnn_batch{batch}_fast_gflops"] = round(gflops / best["fast"], 2)
            out[f"afrnn_batch{batch}_torchscript_vs_fast"] = round(best["torchscript"] / best["fast"], 3)
            out[f"afrnn_batch{batch}_fast_max_abs_diff"] = float((fast(x) - scripted(x)).abs().max())
    return out


def afrnn_on_path(path: str) -> nn.Module:
    model = paper_model("mnist", "afrnn")
    model.training_path = path
    return model


def step_peak_memory_mb(path: str, steps: int, threads: int) -> float:
    """MB of resident memory one training step adds at its peak (the peak resident set after the
    forward and backward minus the resident set before them), in a fresh process so that no other
    path's pages are counted; always the full 784 steps, also with ``--quick``."""
    out = subprocess.run([sys.executable, __file__, "--peak-memory-of", path, "--train-steps", str(steps),
                          "--threads", str(threads)], check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def _peak_memory_child(path: str, steps: int, threads: int) -> None:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = afrnn_on_path(path)
    x, y = torch.randn(BATCH, steps, 1), torch.randint(0, 10, (BATCH,))
    before = _status_kb("VmRSS")
    nn.functional.cross_entropy(model(x), y).backward()
    print((_status_kb("VmHWM") - before) / 1024)


def _status_kb(field: str) -> int:
    """A memory figure of this process from /proc/self/status, kB. VmHWM (the peak resident set) belongs
    to this process's own address space, unlike ``ru_maxrss``, which after a fork and exec starts from
    the parent's resident set."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def training_paths(x: torch.Tensor, y: torch.Tensor, repeats: int, threads: int, bf16: bool,
                   rounds: int) -> dict:
    """Training step of the AFRNN on each training path, interleaved over ``rounds`` (best median)."""
    paths = [p for p in TRAINING_PATHS if bf16 or p != "fused-bf16"]
    models = {path: afrnn_on_path(path) for path in paths}
    best = {path: 1e9 for path in paths}
    for _ in range(rounds):
        for path in paths:
            best[path] = min(best[path], time_training_step(models[path], x, y, repeats))
    out: dict = {}
    for path in paths:
        key = path.replace("-", "_")
        out[f"afrnn_train_s_{key}"] = round(best[path], 4)
        out[f"afrnn_{key}_peak_step_mb"] = round(step_peak_memory_mb(path, STEPS, threads), 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats (< 45 s)")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads for training steps")
    parser.add_argument("--compile", action="store_true", help="also torch.compile (minutes of compile)")
    parser.add_argument("--peak-memory-of", choices=TRAINING_PATHS, help=argparse.SUPPRESS)
    parser.add_argument("--train-steps", type=int, default=STEPS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak_memory_of:                       # the child process of step_peak_memory_mb
        _peak_memory_child(args.peak_memory_of, args.train_steps, args.threads)
        return
    _, flags = cpu_flags()
    load_before = os.getloadavg()[0]
    repeats = 1 if args.quick else 5
    steps = QUICK_STEPS if args.quick else STEPS
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    x = torch.randn(BATCH, steps, 1)
    y = torch.randint(0, 10, (BATCH,))

    bf16 = bool({"avx512_bf16", "amx_bf16"} & flags)
    figures = training_paths(x, y, repeats, args.threads, bf16, 1 if args.quick else 2)
    figures["afrnn_train_s"] = figures["afrnn_train_s_fused"]            # the training default
    for path in TRAINING_PATHS:
        key = f"afrnn_train_s_{path.replace('-', '_')}"
        if key in figures:
            print(f"{key:26s} {figures[key]:.3f} s   (batch {BATCH}, {steps} steps, {args.threads} threads; "
                  f"one step adds {figures[key.replace('train_s_', '') + '_peak_step_mb']} MB at its peak)")
    for key, model in [("rnn_train_s", TorchRNNClassifier("rnn")),
                       ("lstm_train_s", TorchRNNClassifier("lstm")),
                       ("reference_style_train_s", ReferenceStyleAFRNN())]:
        figures[key] = round(time_training_step(model, x, y, repeats), 4)
        print(f"{key:26s} {figures[key]:.3f} s   (batch {BATCH}, {steps} steps, {args.threads} threads)")

    rnn, autograd = figures["rnn_train_s"], figures["afrnn_train_s_autograd"]
    compared = [k for k in figures if k.startswith("afrnn_train_s")]
    compared += ["lstm_train_s", "reference_style_train_s"]
    for key in compared:
        figures[key.replace("_train_s", "_vs_rnn_train_ratio")] = round(figures[key] / rnn, 3)
    for key in [k for k in figures if k.startswith("afrnn_train_s_")]:
        figures[key.replace("afrnn_train_s_", "afrnn_train_vs_autograd_")] = round(figures[key] / autograd, 3)
    figures["reference_style_vs_afrnn_ratio"] = round(figures["reference_style_train_s"]
                                                      / figures["afrnn_train_s"], 3)

    afrnn = paper_model("mnist", "afrnn")
    flops = 3 * 2 * BATCH * afrnn.state_size ** 2 * steps
    figures["afrnn_train_gflop"] = round(flops / 1e9, 2)
    peak = gemm_peak_gflops(args.threads)
    figures["gemm_peak_gflops"] = round(peak, 2)
    for path in ("autograd", "fused"):
        gflops = flops / figures[f"afrnn_train_s_{path}"] / 1e9
        figures[f"afrnn_train_gflops_{path}"] = round(gflops, 2)
        figures[f"afrnn_train_vs_gemm_peak_{path}"] = round(gflops / peak, 3)
    figures["afrnn_train_vs_gemm_peak"] = figures["afrnn_train_vs_gemm_peak_fused"]
    print(f"training step: {figures['afrnn_train_gflop']} GFLOP of recurrence matmuls; fp32 GEMM peak "
          f"{peak:.1f} GFLOP/s ({args.threads} threads); autograd "
          f"{figures['afrnn_train_vs_gemm_peak_autograd']:.2f}, "
          f"fused {figures['afrnn_train_vs_gemm_peak_fused']:.2f} of it")
    if bf16:
        peak16 = gemm_peak_gflops(args.threads, dtype=torch.bfloat16)
        figures["gemm_peak_gflops_bf16"] = round(peak16, 2)
        figures["afrnn_train_gflops_fused_bf16"] = round(flops / figures["afrnn_train_s_fused_bf16"] / 1e9, 2)
        figures["afrnn_train_vs_gemm_peak_fused_bf16"] = round(
            figures["afrnn_train_gflops_fused_bf16"] / peak16, 3)
        print(f"fused-bf16: {figures['afrnn_train_gflops_fused_bf16']} GFLOP/s against a bf16 GEMM peak of "
              f"{peak16:.1f} ({figures['afrnn_train_vs_gemm_peak_fused_bf16']:.2f})")
    figures.update(batch1_candidates(afrnn, 10 if args.quick else 50, args.compile))
    print(f"batch-1 inference vs op floor ({figures['op_floor_ms']} ms = {STEPS} addmm of "
          f"{figures['addmm_batch1_us']} us): " + ", ".join(
              f"{k.removeprefix('afrnn_batch1_').removesuffix('_vs_op_floor')} {v}"
              for k, v in figures.items() if k.endswith("_vs_op_floor")))

    figures.update(batched_inference(afrnn, (8, 64) if args.quick else (2, 8, 16, 32, 64),
                                     3 if args.quick else 10))
    print("batched inference, TorchScript ÷ C loop: " + ", ".join(
        f"batch {k.removeprefix('afrnn_batch').removesuffix('_torchscript_vs_fast')}: {v}"
        for k, v in figures.items() if k.endswith("_torchscript_vs_fast")))

    scripted = torch.jit.script(afrnn.eval())
    for threads in (1, 2):
        figures[f"afrnn_batch1_ms_{threads}thread"] = round(
            time_batch1_inference(scripted, threads, 10 if args.quick else 100), 3)
    figures["afrnn_batch1_ms"] = min(figures["afrnn_batch1_ms_1thread"], figures["afrnn_batch1_ms_2thread"])
    for key in sorted(figures):
        if "ratio" in key or "ms" in key:
            print(f"{key:36s} {figures[key]}")
    figures.update(quick=args.quick, train_steps=steps, train_threads=args.threads,
                   thp=os.environ.get("THP_MEM_ALLOC_ENABLE", "unset"),
                   load_average_before=round(load_before, 2), machine=machine.describe())
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
