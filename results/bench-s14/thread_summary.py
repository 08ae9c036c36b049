"""Per-thread summary of a py-spy raw profile (results/bench-s14/profile_threads.sh): samples per thread,
then each thread's top leaf frames and inclusive frames (percent of that thread's samples).
    python results/bench-s14/thread_summary.py results/bench-s14/profile-c64.raw 15 25"""
import sys
from collections import Counter, defaultdict

leaf, incl, total = defaultdict(Counter), defaultdict(Counter), Counter()
for line in open(sys.argv[1]):
    stack, n = line.rstrip().rsplit(" ", 1)
    frames = stack.split(";")
    thread = frames[0].split(":")[-1].strip() or frames[0]
    n = int(n)
    total[thread] += n
    leaf[thread][frames[-1]] += n
    for f in set(frames[1:]):
        incl[thread][f] += n
for thread, n in total.most_common():
    if n < 0.02 * sum(total.values()):
        continue
    print(f"=== {thread}: {n} samples")
    print("--- leaf")
    for f, k in leaf[thread].most_common(int(sys.argv[2])):
        print(f"{k / n * 100:5.1f}% {f[:150]}")
    print("--- inclusive")
    for f, k in incl[thread].most_common(int(sys.argv[3])):
        print(f"{k / n * 100:5.1f}% {f[:150]}")
