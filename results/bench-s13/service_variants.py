"""Why a forward is slower inside the service than alone (issue 32): the service at c = 64 (wrk, 4 s)
as shipped, with a 10× shorter GIL switch interval (0.5 ms), and with the whole batch as one C call
(``model.inference.chunk_rows`` patched to all rows), alternating, 2 rounds. Prints the forward's wall
time per request from /metrics and the event loop's CPU per request; last line JSON.

    python results/bench-s13/service_variants.py
"""

import json
import os
import runpy
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
MODES = ("shipped", "switch-0.5ms", "one-chunk")


def serve(mode: str, argv: list[str]) -> None:
    """Run ``python -m service argv`` in this process with the mode's patch."""
    if mode == "switch-0.5ms":
        sys.setswitchinterval(0.0005)
    elif mode == "one-chunk":
        import model.inference
        model.inference.chunk_rows = lambda steps, state_size: 1 << 30
    sys.argv = ["service", *argv]
    runpy.run_module("service", run_name="__main__", alter_sys=True)


def main() -> None:
    import httpx
    import numpy as np

    import loadgen
    from peer_compare import free_port
    body = json.dumps({"model": "mnist", "scale": 255,
                       "pixels": np.random.default_rng(0).integers(0, 256, 784).tolist()}).encode()
    rows: dict[str, list[dict]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in (".json", ".pt"):
            (Path(tmp) / f"mnist{suffix}").symlink_to(ROOT / "checkpoints" / f"mnist{suffix}")
        for _ in range(2):
            for mode in MODES:
                port = free_port()
                proc = subprocess.Popen(
                    [sys.executable, __file__, "--serve", mode, "--model-dir", tmp, "--port", str(port),
                     "--log-level", "warning", "--max-queue-length", "1024"], cwd=ROOT,
                    env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)
                url = f"http://127.0.0.1:{port}"
                while True:
                    try:
                        if httpx.get(url + "/health/ready", timeout=2).status_code == 200:
                            break
                    except httpx.TransportError:
                        time.sleep(0.2)
                try:
                    row = loadgen.closed_loop(url + "/classify", body, 64, 4, 1, server_pid=proc.pid)
                finally:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(30)
                rows[mode].append(row)
                print(f"{mode:13s} c=64: {row['per_s']:.1f} req/s, forward {row['forward_ms_per_request']:.2f} "
                      f"ms/request (batch {row['mean_batch_size']:.1f}), event loop "
                      f"{row['loop_cpu_ms_per_request']:.3f} ms CPU/request", flush=True)
    print(json.dumps({mode: [{k: round(r[k], 3) for k in ("per_s", "forward_ms_per_request",
                                                          "loop_cpu_ms_per_request", "mean_batch_size")}
                             for r in runs] for mode, runs in rows.items()}))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--serve":
        serve(sys.argv[2], sys.argv[3:])
    else:
        main()
