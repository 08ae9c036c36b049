"""What a refused connection costs the server: start the service on the MNIST model alone with one
request admitted at a time, send bursts of 1 000 /classify requests on fresh connections from this
process, and read the service's CPU time (utime + stime of /proc/<pid>/stat) around each burst.
Run: python results/bench-quiet-s9/refusal-burst.py [--bursts 3] [--n 1000] [--server-args ARGS]"""
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
    args = parser.parse_args()
    body = json.dumps({"model": "mnist", "pixels": [random.randrange(256) for _ in range(784)],
                       "scale": 255}).encode()
    payload = (f"POST /classify HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
               f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body
    with tempfile.TemporaryDirectory() as models:
        for suffix in (".json", ".pt"):
            (Path(models) / f"mnist{suffix}").symlink_to(REPO / "checkpoints" / f"mnist{suffix}")
        server = subprocess.Popen([sys.executable, "-m", "service", "--model-dir", models, "--port", str(PORT),
                                   "--log-level", "warning", "--max-inflight-requests", "1",
                                   *shlex.split(args.server_args)], cwd=REPO)
        try:
            for _ in range(600):
                try:
                    if httpx.get(f"http://127.0.0.1:{PORT}/health/ready", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            per_connection = []
            for _ in range(args.bursts):
                before = cpu_seconds(server.pid)
                statuses = asyncio.run(burst(args.n, payload))
                spent = cpu_seconds(server.pid) - before
                per_connection.append(spent / args.n * 1000)
                print(f"burst of {args.n}: {dict(statuses)}; server CPU {spent * 1000:.0f} ms, "
                      f"{per_connection[-1]:.2f} ms per connection", flush=True)
        finally:
            server.terminate()
            server.wait(30)
    print(json.dumps({"bench": "refusal_cost", "ms_per_connection": [round(v, 3) for v in per_connection]}))


if __name__ == "__main__":
    main()
