"""The Open Inference Protocol (KServe V2) against the service's own JSON route, on one server.

    python bench/v2_vs_json.py --quick          # < 45 s: 2 rounds of 1 s per arm
    python bench/v2_vs_json.py                  # 3 rounds of 6 s per arm
    python bench/v2_vs_json.py --clients 64

One ``python -m service`` process serves the shipped ``checkpoints/mnist.json`` (max batch 32, one torch
thread, max queue length 1024). Three arms post the same image, the first image of the shipped MNIST
sample (``artifact.samples.load_sample("mnist")``), one image a request:

* ``classify``   — ``POST /classify``, ``{"model": "mnist", "pixels": [784 integers], "scale": 255}``;
* ``v2_json``    — ``POST /v2/models/mnist/infer`` with JSON tensors (``pixels`` UINT8 [1, 784] as a
  JSON list; ``label`` and ``probabilities`` answered as JSON);
* ``v2_binary``  — the same route with the binary tensor extension: a JSON header (its length in the
  ``Inference-Header-Content-Length`` request header) followed by the 784 raw bytes; both outputs are
  asked for as binary data, as ``perf_analyzer`` and ``tritonclient`` do.

Before measuring, each arm's answer is decoded and must give the same label and the same
probabilities (bit for bit) as ``/classify``. The load is the closed loop of ``bench/loadgen.py``
(``wrk``, one connection thread: the binary arm needs its request header, so this benchmark needs wrk),
``--clients`` connections (default 16). The arms alternate inside each round, their order rotating
from round to round (A B C, B C A, C A B, …), so that a slow minute of the shared machine falls on
every arm; each arm's figures are the medians over the rounds. Per arm: requests/s, p50 and p99 of
the round trip, errors, the server's CPU per request (whole process) and its event loop's share (the
HTTP stack: parsing, decoding, encoding).

Figures (the last output line is one JSON object): ``arms`` (per arm: medians and the rounds'
values), ``v2_binary_vs_classify`` and ``v2_json_vs_classify`` (median req/s ÷ the classify arm's),
``round_ratios_binary_vs_classify``; ``machine`` (``bench/machine.py``).

Goal: at c = 16, ``v2_binary_vs_classify`` ≥ 1.0.
"""

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

BENCH = Path(__file__).resolve().parent
REPO_ROOT = BENCH.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(BENCH))

import loadgen  # noqa: E402, I001
import machine  # noqa: E402
from peer_compare import Server  # noqa: E402
from artifact.samples import load_sample  # noqa: E402

ARMS = ("classify", "v2_json", "v2_binary")
PATHS = {"classify": "/classify", "v2_json": "/v2/models/mnist/infer", "v2_binary": "/v2/models/mnist/infer"}
HEADER_LENGTH = "Inference-Header-Content-Length"


def bodies(pixels: np.ndarray) -> dict[str, tuple[bytes, dict[str, str]]]:
    """Each arm's request body and its extra request headers, for one image (uint8, 784 values)."""
    flat = pixels.astype(np.uint8).ravel()
    values = flat.tolist()
    classify = json.dumps({"model": "mnist", "pixels": values, "scale": 255}).encode()
    v2_json = json.dumps({"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, flat.size],
                                      "data": values}]}).encode()
    header = json.dumps({
        "inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, flat.size],
                    "parameters": {"binary_data_size": flat.size}}],
        "outputs": [{"name": "label", "parameters": {"binary_data": True}},
                    {"name": "probabilities", "parameters": {"binary_data": True}}]},
        separators=(",", ":")).encode()
    return {"classify": (classify, {}), "v2_json": (v2_json, {}),
            "v2_binary": (header + flat.tobytes(), {HEADER_LENGTH: str(len(header)),
                                                    "Content-Type": "application/octet-stream"})}


def decode(arm: str, response: httpx.Response) -> tuple[int, np.ndarray]:
    """(label, probabilities) of one answer of ``arm``."""
    if arm == "classify":
        prediction = response.json()["predictions"][0]
        return int(prediction["label"]), np.asarray(prediction["probabilities"], dtype=np.float32)
    length = response.headers.get(HEADER_LENGTH)
    split = int(length) if length is not None else len(response.content)
    doc = json.loads(response.content[:split])
    out, offset = {}, split
    for tensor in doc["outputs"]:
        if "data" in tensor:
            out[tensor["name"]] = np.asarray(tensor["data"])
        else:
            size = tensor["parameters"]["binary_data_size"]
            dtype = {"INT64": "<i8", "FP32": "<f4"}[tensor["datatype"]]
            out[tensor["name"]] = np.frombuffer(response.content[offset:offset + size], dtype=dtype)
            offset += size
    return int(out["label"].ravel()[0]), np.asarray(out["probabilities"], dtype=np.float32).ravel()


@contextlib.contextmanager
def wrk_request_headers(headers: dict[str, str]):
    """``loadgen``'s wrk script with these request headers set after its own Content-Type (its
    ``closed_loop`` posts the body file with ``Content-Type: application/json`` and no other header)."""
    base = loadgen.WRK_SCRIPT
    anchor = 'wrk.headers["Content-Type"] = "application/json"\n'
    if anchor not in base:
        raise RuntimeError("bench/loadgen.py's wrk script no longer sets its Content-Type as expected")
    lines = "".join(f'wrk.headers["{key}"] = "{value}"\n' for key, value in headers.items())
    loadgen.WRK_SCRIPT = base.replace(anchor, anchor + lines)
    try:
        yield
    finally:
        loadgen.WRK_SCRIPT = base


def median_row(rows: list[dict]) -> dict:
    keys = ("per_s", "p50_ms", "p99_ms", "server_cpu_ms_per_request", "loop_cpu_ms_per_request",
            "mean_batch_size", "client_cpu_ms_per_request")
    out = {key: round(statistics.median(r[key] for r in rows), 3)
           for key in keys if all(key in r for r in rows)}
    out.update(errors=sum(r["errors"] for r in rows), rounds_per_s=[round(r["per_s"], 1) for r in rows],
               rounds_p99_ms=[round(r["p99_ms"], 2) for r in rows])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of 1 s per arm (< 45 s)")
    parser.add_argument("--rounds", type=int, help="rounds (default 3; quick 2)")
    parser.add_argument("--seconds", type=float,
                        help="measured seconds per arm and round (default 6; quick 1)")
    parser.add_argument("--clients", type=int, default=16, help="closed-loop connections (default 16)")
    parser.add_argument("--model-dir", type=Path, default=REPO_ROOT / "checkpoints")
    parser.add_argument("--server-args", default="", help="extra flags for python -m service")
    args = parser.parse_args()
    rounds = args.rounds or (2 if args.quick else 3)
    seconds = args.seconds or (1.0 if args.quick else 6.0)
    warmup_s = 0.5 if args.quick else 1.0
    generator = loadgen.resolve("wrk")
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    sample = load_sample("mnist")
    requests = bodies(sample.pixels[0])

    with tempfile.TemporaryDirectory(prefix="v2-vs-json-") as tmp:
        serve_dir = Path(tmp) / "serve"             # the MNIST model alone: others would load too
        serve_dir.mkdir()
        for suffix in (".json", ".pt"):
            (serve_dir / f"mnist{suffix}").symlink_to((args.model_dir / f"mnist{suffix}").resolve())
        argv = ["-m", "service", "--model-dir", str(serve_dir), "--max-queue-length", "1024",
                "--log-level", "warning", *args.server_args.split()]
        server = Server("service", argv, "/classify", "/health/ready", json.loads(requests["classify"][0]),
                        Path(tmp) / "service.log")
        try:
            answers = {}
            for arm in ARMS:
                body, headers = requests[arm]
                response = httpx.post(server.url + PATHS[arm], content=body, timeout=30,
                                      headers={"content-type": "application/json", **headers})
                if response.status_code != 200:
                    raise RuntimeError(f"{arm}: {response.status_code} {response.text[:300]}")
                answers[arm] = decode(arm, response)
            label, probabilities = answers["classify"]
            for arm, (other_label, other_p) in answers.items():
                if other_label != label or not np.array_equal(other_p, probabilities):
                    raise RuntimeError(f"{arm} answers label {other_label}, /classify {label} (or the "
                                       "probabilities differ)")
            print(f"{machine.cpu()[0]}, {os.cpu_count()} CPUs; load average {load_before:.1f}; "
                  f"{args.clients} clients, {rounds} rounds of {seconds:g} s per arm; label {label} "
                  f"(true {int(sample.labels[0])}) on every arm", flush=True)
            runs: dict[str, list[dict]] = {arm: [] for arm in ARMS}
            for r in range(rounds):
                order = ARMS[r % len(ARMS):] + ARMS[:r % len(ARMS)]
                for arm in order:
                    body, headers = requests[arm]
                    with wrk_request_headers(headers):
                        row = loadgen.closed_loop(server.url + PATHS[arm], body, args.clients, seconds,
                                                  warmup_s, generator=generator, server_pid=server.proc.pid)
                    runs[arm].append(row)
                    print(f"round {r + 1} {arm:9s}: {row['per_s']:7.1f} req/s, p50 {row['p50_ms']:.2f} ms, "
                          f"p99 {row['p99_ms']:.2f} ms, errors {row['errors']}, server CPU "
                          f"{row['server_cpu_ms_per_request']:.3f} ms/req (event loop "
                          f"{row.get('loop_cpu_ms_per_request', float('nan')):.3f})", flush=True)
        finally:
            server.stop()

    arms = {arm: median_row(rows) for arm, rows in runs.items()}
    base = arms["classify"]["per_s"]
    figures = {
        "v2_binary_vs_classify": round(arms["v2_binary"]["per_s"] / base, 3),
        "v2_json_vs_classify": round(arms["v2_json"]["per_s"] / base, 3),
        "round_ratios_binary_vs_classify": [round(b["per_s"] / c["per_s"], 3) for b, c
                                            in zip(runs["v2_binary"], runs["classify"], strict=True)],
        "goal_met": arms["v2_binary"]["per_s"] >= base,
        "arms": arms, "clients": args.clients, "rounds": rounds, "seconds_per_run": seconds,
        "request_bytes": {arm: len(requests[arm][0]) for arm in ARMS},
        "load_generator": generator, "server_args": args.server_args, "quick": args.quick,
        "load_average_before": round(load_before, 2), "wall_s": round(time.perf_counter() - started, 1),
        "machine": machine.describe(),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
