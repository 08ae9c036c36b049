"""How much time the service spends in Python's cyclic garbage collector under load, per generation:
runs the service (``service.__main__.main``) with a ``gc.callbacks`` timer, and at exit (SIGTERM) writes
one JSON line to the file named by GC_PROBE_OUT. ``GC_PROBE_FREEZE=1`` calls ``gc.freeze()`` once the
models are loaded (the start-up heap leaves the collector's scans), as an A/B (session 14);
``GC_PROBE_THRESHOLD=N`` sets the young generation's threshold then (session 15).
    GC_PROBE_OUT=/tmp/gc.json python results/bench-s14/gc_probe.py --port 8432"""
import atexit
import gc
import json
import os
import threading
import time
import urllib.request

stats = {g: {"collections": 0, "ms": 0.0, "max_ms": 0.0} for g in range(3)}
started: list[float] = []


def timer(phase: str, info: dict) -> None:
    if phase == "start":
        started.append(time.perf_counter())
    elif started:
        ms = (time.perf_counter() - started.pop()) * 1000
        s = stats[info["generation"]]
        s["collections"] += 1
        s["ms"] += ms
        s["max_ms"] = max(s["max_ms"], ms)


def reset_when_ready(port: int) -> None:
    """Count from the moment the service is ready (start-up's collections are not the request path)."""
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=1)
            break
        except OSError:
            time.sleep(0.5)
    if os.environ.get("GC_PROBE_FREEZE") == "1":
        gc.freeze()
    if os.environ.get("GC_PROBE_THRESHOLD"):
        gc.set_threshold(int(os.environ["GC_PROBE_THRESHOLD"]), *gc.get_threshold()[1:])
    for s in stats.values():
        s.update(collections=0, ms=0.0, max_ms=0.0)
    stats["tracked_objects"] = len(gc.get_objects())
    stats["frozen"] = gc.get_freeze_count()


def write() -> None:
    with open(os.environ["GC_PROBE_OUT"], "w") as f:
        f.write(json.dumps(stats) + "\n")


if __name__ == "__main__":
    import sys

    from service.__main__ import main
    gc.callbacks.append(timer)
    atexit.register(write)
    port = int(sys.argv[sys.argv.index("--port") + 1])
    threading.Thread(target=reset_when_ready, args=(port,), daemon=True).start()
    main(sys.argv[1:])
