"""What B̃ cost per call before ``fix_weights``: for each shipped IMEX model, the time of
``step_coupling()`` recomputed from the weights against the whole batch-1 TorchScript forward that used
to include it (both with the weights not fixed), and the forward once they are fixed. One thread.
    python results/bench-s14/coupling_cost.py"""
import time

import torch

from artifact.export import load_exported

SHAPES = {"mnist": (784, 1), "cifar10": (1024, 3), "pendulum": (29, 4)}


def ms(fn, n: int = 20) -> float:
    for _ in range(3):
        fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e3


torch.set_num_threads(1)
for name, (steps, channels) in SHAPES.items():
    module, _ = load_exported(f"checkpoints/{name}.json")
    x = torch.zeros(1, steps, channels)
    with torch.inference_mode():
        fixed = ms(lambda: module(x, None, True))
        module.fixed_coupling_matrix = module.fixed_step_coupling = None      # as before fix_weights
        solve = ms(module.step_coupling)
        unfixed = ms(lambda: module(x, None, True))
    print(f"{name}: step_coupling {solve:.2f} ms; batch-1 forward {unfixed:.2f} ms unfixed, {fixed:.2f} ms fixed")
