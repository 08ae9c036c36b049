"""The service at 64 clients against the raw forward's ceiling, measured in alternation.

``service_load.py`` measures the raw ceiling and the service minutes apart, and a shared VM's speed
drifts over minutes (±10 % was seen). Here each round measures the raw C loop
(``model.inference.FastRecurrence``, this process, one thread) at batch 24, 32 and 48 (the best is the
round's ceiling), then the service (started once, shipped settings) at 64 closed-loop clients, so the
drift falls on both sides of each round's ratio.

    python bench/ceiling_ratio.py --quick      # 2 rounds, 1 s per side (< 45 s)
    python bench/ceiling_ratio.py              # 5 rounds: 2 s per batch size, 6 s of service

Figures (the last output line is one JSON object): per round ``ceiling_per_s``, ``c64_per_s`` and
``ratio``; ``median_ratio``, ``min_ratio``, ``max_ratio``. Goal (2-core CPU): median ≥ 0.85.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

BENCH = Path(__file__).resolve().parent
REPO_ROOT = BENCH.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(BENCH))

import loadgen  # noqa: E402, I001
import machine  # noqa: E402
from service_load import Service, images_per_s  # noqa: E402

from artifact.export import load_exported  # noqa: E402
from model.inference import FastRecurrence  # noqa: E402
from service.config import Settings  # noqa: E402

BATCHES = (24, 32, 48)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds, 1 s per side (< 45 s)")
    parser.add_argument("--rounds", type=int, help="default 5; quick 2")
    parser.add_argument("--load-generator", choices=loadgen.GENERATORS, default="auto")
    args = parser.parse_args()
    rounds_n = args.rounds or (2 if args.quick else 5)
    raw_s, service_s, warmup_s = (0.4, 1.0, 0.3) if args.quick else (2.0, 6.0, 1.0)
    generator = loadgen.resolve(args.load_generator)
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    torch.set_num_threads(1)
    manifest = REPO_ROOT / "checkpoints" / "mnist.json"
    module, _ = load_exported(manifest)
    fast, why = FastRecurrence.from_module(module)
    if fast is None:
        raise SystemExit(f"no C loop on this machine: {why}")
    body = json.dumps({"model": "mnist", "scale": 255,
                       "pixels": np.random.default_rng(0).integers(0, 256, 784).tolist()}).encode()
    settings = Settings.model_fields
    max_batch, delay_ms = settings["max_batch_size"].default, settings["max_queue_delay_ms"].default
    rounds = []
    with tempfile.TemporaryDirectory(prefix="ceiling-ratio-") as tmp:
        serve_dir = Path(tmp)                    # the MNIST model alone: others would load too
        for suffix in (".json", ".pt"):
            shipped = REPO_ROOT / "checkpoints" / f"mnist{suffix}"
            (serve_dir / f"mnist{suffix}").symlink_to(shipped.resolve())
        service = Service(serve_dir, max_batch, 1, delay_ms)
        try:
            loadgen.closed_loop(service.url + "/classify", body, 64, max(1.0, warmup_s), 0.0,
                                generator=generator)                                  # warm-up
            for r in range(rounds_n):
                with torch.inference_mode():
                    raw = {b: images_per_s(fast, torch.rand(b, 784, 1), raw_s) for b in BATCHES}
                row = loadgen.closed_loop(service.url + "/classify", body, 64, service_s, warmup_s,
                                          generator=generator, server_pid=service.proc.pid)
                ceiling = max(raw.values())
                rounds.append({"ceiling_per_s": round(ceiling, 1),
                               "raw_per_batch": {str(b): round(v, 1) for b, v in raw.items()},
                               "c64_per_s": round(row["per_s"], 1),
                               "ratio": round(row["per_s"] / ceiling, 3)})
                print(f"round {r + 1}: " + json.dumps(rounds[-1]), flush=True)
        finally:
            service.stop()
    ratios = [r["ratio"] for r in rounds]
    print(json.dumps({"rounds": rounds, "ratios": ratios, "median_ratio": statistics.median(ratios),
                      "min_ratio": min(ratios), "max_ratio": max(ratios), "quick": args.quick,
                      "max_batch_size": max_batch, "max_queue_delay_ms": delay_ms,
                      "load_generator": generator, "load_average_before": round(load_before, 2),
                      "wall_s": round(time.perf_counter() - started, 1), "machine": machine.describe()}))


if __name__ == "__main__":
    main()
