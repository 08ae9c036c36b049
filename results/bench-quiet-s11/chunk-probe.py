"""The C loop in chunks against one call for the whole batch, on the shipped MNIST model, one thread:
rows per second at batch 1, 32 and 64 (medians of interleaved runs). "whole" sets the chunk budget above
any batch's drive, i.e. the path before chunking.
Run: python results/bench-quiet-s11/chunk-probe.py [--rounds 9] [--batch1-calls 300]"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from artifact.export import load_exported  # noqa: E402
from model import inference  # noqa: E402
from model.inference import FastRecurrence, cpu_flags  # noqa: E402

CHUNKED = inference.DRIVE_CHUNK_BYTES
WHOLE = 1 << 40


def timed(fast: FastRecurrence, x: torch.Tensor, budget: int) -> float:
    inference.DRIVE_CHUNK_BYTES = budget
    start = time.perf_counter()
    fast(x)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--batch1-calls", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    module, _ = load_exported(REPO / "checkpoints" / "mnist.json")
    fast, why = FastRecurrence.from_module(module)
    if fast is None:
        raise SystemExit(f"no C loop: {why}")
    x = torch.rand(64, 784, 1, generator=torch.Generator().manual_seed(0))
    result = {"cpu_model": cpu_flags()[0]}
    for n, rounds in ((1, args.batch1_calls), (32, args.rounds), (64, args.rounds)):
        xb = x[:n].contiguous()
        times = {"whole": [], "chunked": []}
        for budget in (WHOLE, CHUNKED):
            timed(fast, xb, budget)                                   # warm
        for r in range(rounds):                                       # alternate which goes first
            order = [("whole", WHOLE), ("chunked", CHUNKED)]
            for label, budget in (order if r % 2 else order[::-1]):
                times[label].append(timed(fast, xb, budget))
        med = {k: statistics.median(v) for k, v in times.items()}
        inference.DRIVE_CHUNK_BYTES = CHUNKED
        result[f"batch_{n}"] = {"whole_ms": round(med["whole"] * 1000, 3),
                                "chunked_ms": round(med["chunked"] * 1000, 3),
                                "whole_rows_per_s": round(n / med["whole"], 1),
                                "chunked_rows_per_s": round(n / med["chunked"], 1),
                                "rows_per_call": inference.chunk_rows(784, fast.coupling_t.shape[0])}
        print(f"batch {n}: whole {result[f'batch_{n}']['whole_rows_per_s']} rows/s, "
              f"chunked {result[f'batch_{n}']['chunked_rows_per_s']} rows/s", flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
