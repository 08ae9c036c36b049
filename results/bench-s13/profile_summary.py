import sys
from collections import Counter
rows = []
for line in open(sys.argv[1]):
    stack, n = line.rstrip().rsplit(" ", 1)
    rows.append((stack.split(";"), int(n)))
main = [(st, n) for st, n in rows if "MainThread" in st[0]]
tot = sum(n for _, n in main)
print("main samples", tot, "model thread", sum(n for st, n in rows if "model" in st[0]))
self_c = Counter(); incl = Counter()
for st, n in main:
    self_c[st[-1]] += n
    for f in set(st): incl[f] += n
print("--- self")
for f, n in self_c.most_common(int(sys.argv[2])): print(f"{n/tot*100:5.1f}% {f}")
print("--- inclusive")
for f, n in incl.most_common(int(sys.argv[3])): print(f"{n/tot*100:5.1f}% {f}")
