"""Issue 32, session 15: the C loop with its input drive precomputed (one GEMM per chunk of 6 rows,
then the loop; checkout A) against the drive formed inside the loop (one call per batch; checkout B),
on the shipped mnist and cifar10 models at batch 1 and 32, alternating A B A B in one process each
time, one thread. Prints a line per measurement and a JSON object of medians last.
    python results/bench-s15/fused_drive_ab.py /tmp/base . [--rounds 3] [--seconds 3]"""
import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

PROBE = r"""
import json, sys, time, torch
sys.path.insert(0, ".")
torch.set_num_threads(1)
from artifact.export import load_exported
from model.inference import FastRecurrence
name, batch, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
module, manifest = load_exported(f"checkpoints/{name}.json")
fast, why = FastRecurrence.from_module(module)
assert fast is not None, why
x = torch.rand(batch, manifest.input.sequence_length, manifest.input.channels, generator=torch.Generator().manual_seed(0))
with torch.inference_mode():
    fast(x)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fast(x)
        n += 1
    print(json.dumps({"rows_per_s": batch * n / (time.perf_counter() - start)}))
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    rates = {}
    for _ in range(args.rounds):
        for name in ("mnist", "cifar10"):
            for batch in (1, 32):
                for label, root in (("A", args.a), ("B", args.b)):
                    out = subprocess.run([sys.executable, "-c", PROBE, name, str(batch), str(args.seconds)],
                                         cwd=root, capture_output=True, text=True, check=True,
                                         env={**os.environ, "OMP_NUM_THREADS": "1"})
                    rate = json.loads(out.stdout.strip().splitlines()[-1])["rows_per_s"]
                    rates.setdefault(f"{label}_{name}_b{batch}", []).append(rate)
                    print(f"{label} {name} batch {batch}: {rate:.1f} rows/s", flush=True)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    summary = {k: round(statistics.median(v), 1) for k, v in rates.items()}
    for name in ("mnist", "cifar10"):
        for batch in (1, 32):
            summary[f"B_vs_A_{name}_b{batch}"] = round(summary[f"B_{name}_b{batch}"] / summary[f"A_{name}_b{batch}"], 3)
    summary["cpu"] = cpu
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
