"""Issue 32, session 15: where the event loop's busy time goes, from a py-spy raw profile (Python frames):
each busy MainThread sample is charged to the innermost frame of a known group (idle = the loop's own
frame is the leaf).
    python results/bench-s15/loop_groups.py results/bench-s15/profile-model-c64.raw"""
import sys
from collections import Counter

GROUPS = [  # (group, substring of a frame), innermost match wins
    ("gc", "gc_collect"),
    ("parse JSON", "parse_json"),
    ("validate body", "validate ("),
    ("decode pixels", "ClassifierAPI.decode"),
    ("encode result", "ClassifierAPI.encode"),
    ("response model + JSON", "model_dump_json"),
    ("response model + JSON", "ClassifyResponse"),
    ("batcher submit", "DynamicBatcher.submit"),
    ("batcher worker (loop side)", "DynamicBatcher._work"),
    ("batcher worker (loop side)", "DynamicBatcher._collect"),
    ("batcher worker (loop side)", "DynamicBatcher._answer"),
    ("send response", "Response.__call__"),
    ("route handler (rest)", "classify (service/api/routes/classify.py"),
    ("lean handler (rest)", "handle_lean"),
    ("guard: read body", "_read_body"),
    ("guard (rest)", "RequestGuardMiddleware"),
    ("metrics middleware", "RequestMetricsMiddleware"),
    ("starlette/fastapi outer", "Starlette.__call__"),
    ("starlette/fastapi outer", "FastAPI.__call__"),
    ("uvicorn", "uvicorn/"),
]
counts, busy = Counter(), 0
for line in open(sys.argv[1]):
    stack, n = line.rstrip().rsplit(" ", 1)
    frames = stack.split(";")
    if "MainThread" not in frames[0]:
        continue
    if frames[-1].startswith("Runner.run") or "epoll" in frames[-1] or "select (selectors" in frames[-1]:
        continue
    n = int(n)
    busy += n
    group = "other"
    for f in reversed(frames[1:]):
        hit = next((g for g, s in GROUPS if s in f), None)
        if hit:
            group = hit
            break
    counts[group] += n
print(f"busy samples: {busy}")
for g, n in counts.most_common():
    print(f"{n / busy * 100:5.1f}%  {g}")
