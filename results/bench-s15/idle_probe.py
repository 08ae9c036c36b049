"""Issue 32, session 15: is the slower forward of a lone request the model's or the machine's? Times the
shipped mnist model's batch-1 forward (the C loop) and a numpy workload of similar length (300 steps of
tanh(z @ A)), each back to back, after 5 ms asleep, and after 5 ms of spinning; medians, ms.
    python results/bench-s15/idle_probe.py"""
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from artifact.export import load_exported  # noqa: E402
from model.inference import FastRecurrence, cpu_flags  # noqa: E402

torch.set_num_threads(1)


def timed(fn, pause) -> float:
    out = []
    for _ in range(150):
        pause()
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return round(statistics.median(out) * 1000, 3)


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


module, _ = load_exported(Path(__file__).resolve().parents[2] / "checkpoints" / "mnist.json")
fast, why = FastRecurrence.from_module(module)
assert fast is not None, why
x = torch.rand(1, 784, 1, generator=torch.Generator().manual_seed(0))
a = np.random.default_rng(0).random((256, 256), dtype=np.float32) * 0.01
z0 = np.random.default_rng(1).random((8, 256), dtype=np.float32)


def numpy_work():
    z = z0
    for _ in range(300):
        z = np.tanh(z @ a)


result = {"cpu": cpu_flags()[0]}
with torch.inference_mode():
    for name, fn in (("forward", lambda: fast(x)), ("numpy", numpy_work)):
        for _ in range(20):
            fn()
        result[name] = {"back_to_back_ms": timed(fn, lambda: None),
                        "after_5ms_asleep_ms": timed(fn, lambda: time.sleep(0.005)),
                        "after_5ms_spinning_ms": timed(fn, lambda: spin(0.005))}
print(json.dumps(result))
