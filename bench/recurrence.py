"""Benchmark of the fused block recurrence (pixel-MNIST AFRNN, 2 × 128, 784 steps).

Times one training step (forward + backward + Adam) at batch 128 for
  * the AFRNN block form (``model.paper_model('mnist', 'afrnn')``: one matmul per step),
  * ``nn.RNN`` (2 layers, 128, tanh) and ``nn.LSTM`` (1 layer, 128) with a linear head,
  * a per-layer implementation in the style of the reference code (several matmuls per step:
    each layer's own recurrence, the feedforward and the feedback are separate products),
and the batch-1 inference latency of the TorchScript AFRNN with 1 and 2 intra-op threads.

    python bench/recurrence.py            # full run (≈ 2–3 min on 2 cores)
    python bench/recurrence.py --quick    # < 45 s: training steps on 196 of the 784 steps

The last line of the output is one JSON object with the figures.
"""

import argparse
import json
import os
import platform
import statistics
import time

import torch
from torch import nn

from model import paper_model

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats (< 45 s)")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads for training steps")
    args = parser.parse_args()
    repeats = 1 if args.quick else 5
    steps = QUICK_STEPS if args.quick else STEPS
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    x = torch.randn(BATCH, steps, 1)
    y = torch.randint(0, 10, (BATCH,))

    afrnn = paper_model("mnist", "afrnn")
    figures = {}
    for key, model in [("afrnn_train_s", afrnn),
                       ("rnn_train_s", TorchRNNClassifier("rnn")),
                       ("lstm_train_s", TorchRNNClassifier("lstm")),
                       ("reference_style_train_s", ReferenceStyleAFRNN())]:
        figures[key] = round(time_training_step(model, x, y, repeats), 4)
        print(f"{key:26s} {figures[key]:.3f} s   (batch {BATCH}, {steps} steps, {args.threads} threads)")

    rnn = figures["rnn_train_s"]
    for key in ("afrnn_train_s", "lstm_train_s", "reference_style_train_s"):
        figures[key.replace("_train_s", "_vs_rnn_train_ratio")] = round(figures[key] / rnn, 3)
    figures["reference_style_vs_afrnn_ratio"] = round(figures["reference_style_train_s"]
                                                      / figures["afrnn_train_s"], 3)

    scripted = torch.jit.script(afrnn.eval())
    for threads in (1, 2):
        figures[f"afrnn_batch1_ms_{threads}thread"] = round(
            time_batch1_inference(scripted, threads, 10 if args.quick else 100), 3)
    figures["afrnn_batch1_ms"] = min(figures["afrnn_batch1_ms_1thread"], figures["afrnn_batch1_ms_2thread"])
    for key in sorted(figures):
        if "ratio" in key or "ms" in key:
            print(f"{key:36s} {figures[key]}")
    figures.update(quick=args.quick, train_steps=steps, train_threads=args.threads, torch=torch.__version__,
                   machine=platform.machine(), load_average_1min=round(os.getloadavg()[0], 2))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
