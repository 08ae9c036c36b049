"""CPU time per request of each thread of a running service, over a c = 1 run of drive_raw.py.

Measured in session 7 (busy machine: an MNIST training run on the other core), from the repository root:
    mkdir -p /tmp/md && cp checkpoints/mnist.json checkpoints/mnist.pt /tmp/md/
    OMP_NUM_THREADS=1 python -m service --model-dir /tmp/md --port 8765 --log-level warning &
    python results/profile-c1-s7/drive_raw.py 2           # warm-up
    python results/profile-c1-s7/thread_cpu.py $(pgrep -f "port 8765" | head -1)
Output of that run in thread_cpu.out.
"""
import os
import subprocess
import sys


def snapshot(pid: str) -> dict:
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = open(f"/proc/{pid}/task/{tid}/stat").read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        out[tid] = int(fields[11]) + int(fields[12])          # utime + stime, clock ticks
    return out


pid = sys.argv[1]
before = snapshot(pid)
run = subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "drive_raw.py"), "8"],
                     capture_output=True, text=True).stdout
n = int(run.split()[0])
print(run.strip())
after = snapshot(pid)
tick = os.sysconf("SC_CLK_TCK")
for tid, ticks in after.items():
    if ticks - before.get(tid, 0):
        print(f"thread {tid}{' (main: event loop)' if tid == pid else ''}: "
              f"{1000 * (ticks - before.get(tid, 0)) / tick / n:.2f} ms CPU per request")
