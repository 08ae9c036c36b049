"""Issue 32, session 15: c = 64 throughput ÷ the raw ceiling, with the two measured in alternation so that
the host's drift (±10 % between minutes here) falls on both: each round measures the raw C loop at
batch 24, 32 and 48 (this process, one thread, 2 s each; the best is the round's ceiling), then the
service (started once, shipped settings) at c = 64 with wrk for 6 s. Prints each round and, last, a
JSON object with the per-round ratios and their median.
    python results/bench-s15/ceiling_ratio.py [--rounds 5]"""
import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
import loadgen  # noqa: E402
from service_load import Service, images_per_s  # noqa: E402

from artifact.export import load_exported  # noqa: E402
from model.inference import FastRecurrence, cpu_flags  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    module, manifest = load_exported(ROOT / "checkpoints" / "mnist.json")
    fast, why = FastRecurrence.from_module(module)
    assert fast is not None, why
    body = json.dumps({"model": "mnist", "scale": 255,
                       "pixels": np.random.default_rng(0).integers(0, 256, 784).tolist()}).encode()
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        serve_dir = Path(tmp)
        for suffix in (".json", ".pt"):
            (serve_dir / f"mnist{suffix}").symlink_to((ROOT / "checkpoints" / f"mnist{suffix}").resolve())
        service = Service(serve_dir, 32, 1, 0.0)
        try:
            loadgen.closed_loop(service.url + "/classify", body, 64, 2.0, 1.0)        # warm-up
            for r in range(args.rounds):
                with torch.inference_mode():
                    raw = {b: images_per_s(fast, torch.rand(b, 784, 1), 2.0) for b in (24, 32, 48)}
                row = loadgen.closed_loop(service.url + "/classify", body, 64, 6.0, 1.0,
                                          server_pid=service.proc.pid)
                ceiling = max(raw.values())
                rounds.append({"ceiling_per_s": round(ceiling, 1),
                               "raw_per_batch": {b: round(v, 1) for b, v in raw.items()},
                               "c64_per_s": round(row["per_s"], 1),
                               "ratio": round(row["per_s"] / ceiling, 3)})
                print(f"round {r + 1}: " + json.dumps(rounds[-1]), flush=True)
        finally:
            service.stop()
    ratios = [r["ratio"] for r in rounds]
    print(json.dumps({"cpu": cpu_flags()[0], "ratios": ratios, "median_ratio": statistics.median(ratios),
                      "min_ratio": min(ratios), "max_ratio": max(ratios)}))


if __name__ == "__main__":
    main()
