"""Benchmark of the fused block recurrence (pixel-MNIST AFRNN, 2 × 128, 784 steps).

Times one training step (forward + backward + Adam) at batch 128 for
  * the AFRNN block form (``model.paper_model('mnist', 'afrnn')``: one matmul per step),
  * ``nn.RNN`` (2 layers, 128, tanh) and ``nn.LSTM`` (1 layer, 128) with a linear head,
  * a per-layer implementation in the style of the reference code (several matmuls per step:
    each layer's own recurrence, the feedforward and the feedback are separate products),
and the batch-1 inference latency of the TorchScript AFRNN with 1 and 2 intra-op threads.

    python bench/recurrence.py            # full run (≈ 2–3 min on 2 cores)
    python bench/recurrence.py --quick    # < 45 s

The last line of the output is one JSON object with the figures.
"""

import argparse
import json
import platform
import statistics
import time

import torch
from torch import nn

from model import paper_model

STEPS, BATCH, HIDDEN = 784, 128, 128


class ReferenceStyleAFRNN(nn.Module):
    """Two-layer AFRNN written layer by layer, as the reference code does (a benchmark baseline)::

        g ← g + ε tanh((R − Rᵀ − γI) g − Wᵀ h + E x_t + b_g)
        h ← h + ε tanh(W g + (S − Sᵀ − γI) h + b_h)

    Five matmuls per step instead of one. It iterates with ``unbind`` like the block form, so the
    comparison isolates the per-layer products (indexing ``x[:, t]`` would be slower still).
    """

    def __init__(self, hidden: int = HIDDEN, classes: int = 10, epsilon: float = 0.01, gamma: float = 0.001):
        super().__init__()
        self.epsilon, self.gamma = epsilon, gamma
        self.E = nn.Linear(1, hidden)
        self.R = nn.Parameter(torch.randn(hidden, hidden) / hidden)
        self.S = nn.Parameter(torch.randn(hidden, hidden) / hidden)
        self.W = nn.Parameter(torch.randn(hidden, hidden) / hidden)
        self.b_h = nn.Parameter(torch.zeros(hidden))
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        eye = torch.eye(self.R.shape[0])
        rec_g = self.R - self.R.t() - self.gamma * eye
        rec_h = self.S - self.S.t() - self.gamma * eye
        g = x.new_zeros(x.shape[0], self.R.shape[0])
        h = x.new_zeros(x.shape[0], self.S.shape[0])
        for u_t in self.E(x).unbind(1):
            g_new = g + self.epsilon * torch.tanh(g @ rec_g.t() - h @ self.W + u_t)
            h = h + self.epsilon * torch.tanh(g @ self.W.t() + h @ rec_h.t() + self.b_h)
            g = g_new
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
    repeats = 2 if args.quick else 8
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    x = torch.randn(BATCH, STEPS, 1)
    y = torch.randint(0, 10, (BATCH,))

    afrnn = paper_model("mnist", "afrnn")
    figures = {}
    for key, model in [("afrnn_train_s", afrnn),
                       ("rnn_train_s", TorchRNNClassifier("rnn")),
                       ("lstm_train_s", TorchRNNClassifier("lstm")),
                       ("reference_style_train_s", ReferenceStyleAFRNN())]:
        figures[key] = round(time_training_step(model, x, y, repeats), 4)
        print(f"{key:26s} {figures[key]:.3f} s   (batch {BATCH}, {STEPS} steps, {args.threads} threads)")

    rnn = figures["rnn_train_s"]
    for key in ("afrnn_train_s", "lstm_train_s", "reference_style_train_s"):
        figures[key.replace("_train_s", "_vs_rnn_train_ratio")] = round(figures[key] / rnn, 3)
    figures["reference_style_vs_afrnn_ratio"] = round(figures["reference_style_train_s"]
                                                      / figures["afrnn_train_s"], 3)

    scripted = torch.jit.script(afrnn.eval())
    for threads in (1, 2):
        figures[f"afrnn_batch1_ms_{threads}thread"] = round(
            time_batch1_inference(scripted, threads, 20 if args.quick else 100), 3)
    figures["afrnn_batch1_ms"] = min(figures["afrnn_batch1_ms_1thread"], figures["afrnn_batch1_ms_2thread"])
    for key in sorted(figures):
        if "ratio" in key or "ms" in key:
            print(f"{key:36s} {figures[key]}")
    figures.update(quick=args.quick, torch=torch.__version__, machine=platform.machine(),
                   cpus=torch.get_num_threads())
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
