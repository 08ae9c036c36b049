"""Issue 32, session 15: is the forward inside the service slower because its thread waits (for the GIL,
or for a core), or because each CPU-second does less? Runs the service in this process with
``DynamicBatcher._run`` wrapped to record, per batch, the wall time and the model thread's own CPU time
(``time.thread_time``), and writes their sums to /tmp/gil-probe.json at exit.
    python results/bench-s15/gil_probe.py --port 8434      # then load it; SIGTERM writes the file
``GIL_PROBE_SWITCH_S`` sets ``sys.setswitchinterval`` first (how long a thread may hold the GIL while
another waits for it; CPython's default is 0.005 s).
"""
import atexit
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from service import __main__ as entry  # noqa: E402
from service.batching import DynamicBatcher  # noqa: E402

totals = {"batches": 0, "rows": 0, "wall_s": 0.0, "thread_cpu_s": 0.0}
original = DynamicBatcher._run


def timed_run(self, payloads):
    w, c = time.perf_counter(), time.thread_time()
    out = original(self, payloads)
    totals["wall_s"] += time.perf_counter() - w
    totals["thread_cpu_s"] += time.thread_time() - c
    totals["batches"] += 1
    totals["rows"] += sum(p.rows for p in payloads)
    return out


DynamicBatcher._run = timed_run
if os.environ.get("GIL_PROBE_SWITCH_S"):
    sys.setswitchinterval(float(os.environ["GIL_PROBE_SWITCH_S"]))
totals["switch_interval_s"] = sys.getswitchinterval()
atexit.register(lambda: Path("/tmp/gil-probe.json").write_text(json.dumps(totals)))
entry.main(sys.argv[1:])
