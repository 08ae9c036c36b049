"""Seconds per training step (batch 128, 784 steps, forward + backward + Adam), explicit Euler against
IMEX, the same paper-size MNIST AFRNN at our defaults, interleaved in one run, one thread.
Run: python results/mnist-imex-probe/step-time.py"""
import statistics
import time

import torch

from model.paper import paper_model

torch.set_num_threads(1)
x, y = torch.rand(128, 784, 1), torch.randint(0, 10, (128,))
models = {}
for step in ("euler", "imex"):
    torch.manual_seed(0)
    model = paper_model("mnist", "afrnn", epsilon=0.1, gamma=0.01, init_std=2.0, discretisation=step)
    models[step] = (model, torch.optim.Adam(model.parameters(), 1e-3))
times = {step: [] for step in models}
for _ in range(4):
    for step, (model, optimizer) in models.items():
        started = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times[step].append(time.perf_counter() - started)
for step, seconds in times.items():
    print(f"{step}: {statistics.median(seconds):.3f} s per step (median of {len(seconds)}; "
          f"all {[round(s, 3) for s in seconds]})")
print(f"imex / euler: {statistics.median(times['imex']) / statistics.median(times['euler']):.3f}")
