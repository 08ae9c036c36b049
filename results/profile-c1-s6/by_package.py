"""Share of the event-loop thread's busy samples by package, from py-spy's raw output.

Recorded on the busy machine (two trainings running) against `python -m service --model-dir <mnist only>
--port 8765`, driven at c = 1 by `python drive.py 14` (one httpx client posting one MNIST image):
    py-spy record -p <pid> -r 250 -d 10 --format raw -o py-spy-c1.txt --threads --idle
Idle samples (the loop waiting in `Runner.run`) are left out.
"""
import re
import sys
from collections import Counter
from pathlib import Path

path = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("py-spy-c1.txt"))
by, total = Counter(), 0
for line in path.read_text().splitlines():
    stack, n = line.rsplit(" ", 1)
    frames = stack.split(";")
    if "MainThread" not in frames[0] or frames[-1].startswith("Runner.run"):
        continue
    total += int(n)
    match = re.search(r"\(([^:)]+)", frames[-1])
    by[(match.group(1) if match else frames[-1]).split("/")[0]] += int(n)
print(f"{total} busy samples of the event-loop thread")
for package, n in by.most_common(8):
    print(f"{100 * n / total:5.1f} %  {package}")
