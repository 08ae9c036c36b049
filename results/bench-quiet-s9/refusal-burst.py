"""What a refused connection costs the server: start the service on the MNIST model alone with one
request admitted at a time, send bursts of 1 000 /classify requests on fresh connections from this
process, and read the service's CPU time (utime + stime of /proc/<pid>/stat) around each burst, and its
resident set (VmRSS) after each burst and after idling.
Run: python results/bench-quiet-s9/refusal-burst.py [--bursts 3] [--n 1000] [--server-args ARGS]
     [--warmup N] [--idle-s S] [--env KEY=VALUE ...]
(--warmup, --idle-s, --env and the RSS figures were added in session 11, for
results/bench-quiet-s11; without them the run is session 9's.)"""
import argparse
import asyncio
import json
import os
import random
import shlex
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
PORT = 8801


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def burst(n: int, payload: bytes) -> Counter:
    async def one() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", PORT)
        writer.write(payload)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        writer.close()
        return int(head.split(b" ", 2)[1])
    return Counter(await asyncio.gather(*(one() for _ in range(n))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bursts", type=int, default=3)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--server-args", default="", help='extra service flags, e.g. "--http-server granian"')
    parser.add_argument("--warmup", type=int, default=0, help="a first burst of this many, not counted "
                                                              "(bench/soak.py warms up with a quarter)")
    parser.add_argument("--idle-s", type=float, default=0.0, help="then idle this long and read the RSS again")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the service's environment")
    args = parser.parse_args()
    body = json.dumps({"model": "mnist", "pixels": [random.randrange(256) for _ in range(784)],
                       "scale": 255}).encode()
    payload = (f"POST /classify HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
               f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body
    env = {**os.environ, **dict(item.split("=", 1) for item in args.env)}
    rss: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as models:
        for suffix in (".json", ".pt"):
            (Path(models) / f"mnist{suffix}").symlink_to(REPO / "checkpoints" / f"mnist{suffix}")
        server = subprocess.Popen([sys.executable, "-m", "service", "--model-dir", models, "--port", str(PORT),
                                   "--log-level", "warning", "--max-inflight-requests", "1",
                                   *shlex.split(args.server_args)], cwd=REPO, env=env)
        try:
            for _ in range(600):
                try:
                    if httpx.get(f"http://127.0.0.1:{PORT}/health/ready", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            if args.warmup:
                asyncio.run(burst(args.warmup, payload))
                time.sleep(2)
            rss["before"] = rss_mb(server.pid)
            per_connection = []
            for i in range(args.bursts):
                before = cpu_seconds(server.pid)
                statuses = asyncio.run(burst(args.n, payload))
                spent = cpu_seconds(server.pid) - before
                per_connection.append(spent / args.n * 1000)
                rss[f"after_burst_{i + 1}"] = rss_mb(server.pid)
                print(f"burst of {args.n}: {dict(statuses)}; server CPU {spent * 1000:.0f} ms, "
                      f"{per_connection[-1]:.2f} ms per connection; RSS {rss[f'after_burst_{i + 1}']:.1f} MB",
                      flush=True)
            if args.idle_s:
                time.sleep(args.idle_s)
                rss["idle"] = rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(30)
    growth = {k: round((v - rss["before"]) / rss["before"] * 100, 2) for k, v in rss.items() if k != "before"}
    print(json.dumps({"bench": "refusal_cost", "server_args": args.server_args, "env": args.env,
                      "ms_per_connection": [round(v, 3) for v in per_connection],
                      "rss_mb": {k: round(v, 1) for k, v in rss.items()}, "rss_growth_pct": growth}))


if __name__ == "__main__":
    main()
