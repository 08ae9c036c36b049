"""Where a burst's resident memory goes: start the service on the MNIST model alone with one request
admitted at a time, send a warm-up burst and then bursts of 1 000 /classify requests on fresh
connections (nearly all refused 503), and read the service's RSS after each burst and after idling.
Run: python results/bench-quiet-s11/burst-rss.py [--bursts 3] [--server-args ARGS] [--env KEY=VALUE ...]"""
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
PORT = 8802


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
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the service's environment")
    args = parser.parse_args()
    body = json.dumps({"model": "mnist", "pixels": [random.randrange(256) for _ in range(784)],
                       "scale": 255}).encode()
    payload = (f"POST /classify HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
               f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body
    env = {**os.environ, **dict(item.split("=", 1) for item in args.env)}
    samples: dict[str, float] = {}
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
            samples["ready"] = rss_mb(server.pid)
            asyncio.run(burst(args.n // 4, payload))              # warm-up, as bench/soak.py does
            time.sleep(2)
            samples["after_warmup"] = rss_mb(server.pid)
            for i in range(args.bursts):
                statuses = asyncio.run(burst(args.n, payload))
                samples[f"after_burst_{i + 1}"] = rss_mb(server.pid)
                print(f"burst {i + 1}: {dict(statuses)}; RSS {samples[f'after_burst_{i + 1}']:.1f} MB", flush=True)
            for idle_s in (5, 15):
                time.sleep(idle_s - (5 if idle_s == 15 else 0))
                samples[f"idle_{idle_s}s"] = rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(30)
    warm = samples["after_warmup"]
    growth = {k: round((v - warm) / warm * 100, 2) for k, v in samples.items() if k != "ready"}
    print(json.dumps({"bench": "burst_rss", "server_args": args.server_args, "env": args.env,
                      "rss_mb": {k: round(v, 1) for k, v in samples.items()}, "growth_pct": growth}))


if __name__ == "__main__":
    main()
