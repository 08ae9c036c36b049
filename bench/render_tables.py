"""Write the tables of docs/performance.md from a folder of benchmark JSON files.

    python bench/render_tables.py docs/performance-data        # the committed full runs (the docs' tables)
    python bench/render_tables.py bench/out                     # after `make bench` (quick runs)
    python bench/render_tables.py docs/performance-data --check # exit 1 when a table differs

Each table sits in docs/performance.md between ``<!-- table:NAME -->`` and ``<!-- /table -->``; the text
between the markers is replaced by what ``TABLES[NAME]`` renders from ``<folder>/<source>.json`` (the
last-line JSON of ``bench/<source>.py``, as ``bench/run_all.py`` writes it). A table whose JSON is not
in the folder is left as it is. Every table starts with the line that says which run it shows: the
command, the CPU (model and its AVX/AMX flags) and the date, from the JSON's ``machine`` record
(``bench/machine.py``).
"""

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DOC = REPO_ROOT / "docs" / "performance.md"
BLOCK = re.compile(r"(<!-- table:(?P<name>[a-z0-9-]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.S)


# -- formatting ---------------------------------------------------------------------------------------
def num(value: float, digits: int = 2) -> str:
    """A figure with ``digits`` decimals and a thin space between thousands (1 234.5)."""
    text = f"{value:,.{digits}f}"
    return text.replace(",", "\u202f")


def run_line(data: dict) -> str:
    """Which run a table shows: command, CPU (vector flags), torch, the load average at its end, date."""
    m = data["machine"]
    flags = " ".join(f for f in m["cpu_flags"] if f.startswith(("avx2", "avx512f", "avx512_bf16", "amx")))
    quick = " (quick mode)" if data.get("quick") else ""
    load = f", load average {m['load_average_1min']}" if m.get("load_average_1min") is not None else ""
    return (f"Run: `{m['command']}`{quick}; {m['cpu_model']}, {m['cpus']} vCPUs ({flags or 'no AVX2'}), "
            f"torch {m['torch']}{load}; {m['date']}.")


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def block(data: dict, lines: list[str]) -> str:
    return "\n".join([run_line(data), "", *lines]) + "\n"


# -- the tables ---------------------------------------------------------------------------------------
def service_load(d: dict) -> str:
    c64 = d["settings"]["batched_64"]
    rows = [
        ["raw ceiling: the forward alone, best batch (rows/s)",
         f"{num(d['raw_ceiling_per_s'], 1)} (batch {d['raw_ceiling_batch']})", ""],
        ["the service, 64 clients (req/s)", num(d["batched_64_per_s"], 1), ""],
        ["÷ raw ceiling", num(d["batched_vs_ceiling"], 3), "≥ 0.85"],
        ["÷ raw ceiling with the other core busy", num(d["batched_vs_busy_ceiling"], 3), ""],
        ["mean batch at 64 clients; p50 / p99", f"{num(c64['mean_batch_size'], 1)}; "
         f"{num(c64['p50_ms'], 1)} / {num(c64['p99_ms'], 1)} ms", ""],
        ["event loop's CPU a request at 64 clients (the stack)", f"{num(d['stack_cpu_ms_64'], 3)} ms",
         "≤ 0.3 ms"],
        ["service's CPU a request at 64 clients", f"{num(d['server_cpu_ms_64'], 3)} ms", ""],
        ["one client: p50", f"{num(d['single_p50_ms'], 2)} ms", ""],
        ["bare batch-1 forward, back to back (after 5 ms idle)",
         f"{num(d['bare_forward_ms'], 2)} ms ({num(d['bare_forward_after_idle_ms'], 2)} ms)", ""],
        ["one client's p50 ÷ bare forward", num(d["single_p50_vs_bare"], 3), "≤ 1.3"],
        ["unbatched service, 64 clients (req/s)", num(d["unbatched_64_per_s"], 1), ""],
        ["batched ÷ unbatched at 64 clients", num(d["batched_vs_unbatched"], 2), ""],
    ]
    return block(d, table(["figure", "value", "goal"], rows)
                 + ["", f"Load generator: {d['load_generator']}; {num(d['seconds_per_setting'], 1)} s per "
                        f"setting; max batch {d['max_batch_size']}."])


def ceiling_ratio(d: dict) -> str:
    rows = [[str(i + 1), num(r["ceiling_per_s"], 1), num(r["c64_per_s"], 1), num(r["ratio"], 3)]
            for i, r in enumerate(d["rounds"])]
    rows.append(["median", "", "", f"**{num(d['median_ratio'], 3)}**"])
    return block(d, table(["round", "raw ceiling (rows/s)", "service, 64 clients (req/s)", "ratio"], rows))


def peer_compare(d: dict) -> str:
    cols = [(c, n) for c in ("quiet", "busy") for n in (1, 8, 64)]
    header = ["ours ÷ LitServe, throughput"] + [f"{c} c = {n}" for c, n in cols]
    rows = [["ours (the C loop)"] + [num(d[f"{c}_c{n}_vs_peer"], 2) for c, n in cols],
            ["**ours stack-only** (the same TorchScript forward)"]
            + [f"**{num(d[f'stack_{c}_c{n}_vs_peer'], 2)}**" for c, n in cols],
            ["CPU ms a request: stack-only / LitServe"]
            + [f"{num(d['points'][c][f'c{n}']['stack']['server_cpu_ms_per_request'], 2)} / "
               f"{num(d['points'][c][f'c{n}']['peer']['server_cpu_ms_per_request'], 2)}" for c, n in cols]]
    return block(d, table(header, rows) + [
        "", f"One client's p50 ÷ LitServe's: ours {num(d['c1_p50_vs_peer'], 3)}, stack-only "
            f"{num(d['stack_c1_p50_vs_peer'], 3)}. Peer: {d['peer']}; {d['rounds']} rounds of "
            f"{num(d['seconds_per_run'], 0)} s per point; load generator {d['load_generator']}."])


HTTP_APPS = {"bare": "`bare`: read the body, send a constant answer",
             "parse": "`parse`: + `pydantic_core.from_json`",
             "decode": "`decode`: + the service's `ClassifierAPI.decode`",
             "fastapi": "`fastapi`: `decode` through a FastAPI route",
             "bare-paced": "`bare-paced`: `bare` at the service's rate",
             "decode-paced": "`decode-paced`: `decode` at the service's rate"}


def http_floor(d: dict) -> str:
    rows = []
    for app, label in HTTP_APPS.items():
        rates = d[app]["per_s"]
        span = num(min(rates), 0) if len(rates) == 1 else f"{num(min(rates), 0)}–{num(max(rates), 0)}"
        rows.append([label, span, f"{num(d[app]['server_cpu_ms_per_request_median'], 3)} ms"])
    return block(d, table(["app", "req/s", "server CPU a request (median)"], rows)
                 + ["", f"{d['clients']} clients; {d['rounds']} × {num(d['seconds'], 0)} s for each app; "
                        f"paced apps answer {num(d['pace_ms'], 0)} ms after the request."])


def recurrence_training(d: dict) -> str:
    rows = []
    for path in ("autograd", "fused", "fused_bf16"):
        if path == "fused_bf16" and "afrnn_train_s_fused_bf16" not in d:      # a CPU without bf16
            continue
        peak = ""
        if f"afrnn_train_vs_gemm_peak_{path}" in d:
            kind = "bf16" if "bf16" in path else "fp32"
            peak = f"{num(d[f'afrnn_train_vs_gemm_peak_{path}'], 2)} of {kind}"
        rows.append([f"AFRNN, `{path.replace('_', '-')}`", f"{num(d[f'afrnn_train_s_{path}'], 3)} s",
                     num(d[f"afrnn_train_vs_autograd_{path}"], 2),
                     num(d[f"afrnn_vs_rnn_train_ratio_{path}"], 2),
                     peak, f"{num(d[f'afrnn_{path}_peak_step_mb'], 0)} MB"])
    for key, label in (("rnn", "`nn.RNN` (2 × 128, tanh)"), ("lstm", "`nn.LSTM` (1 × 128)"),
                       ("reference_style", "per-layer cell, reference-code style")):
        ratio = "1" if key == "rnn" else num(d[f"{key}_vs_rnn_train_ratio"], 2)
        rows.append([label, f"{num(d[f'{key}_train_s'], 3)} s", "", ratio, "", ""])
    peaks = f"fp32 {num(d['gemm_peak_gflops'], 1)}" + (
        f", bf16 {num(d['gemm_peak_gflops_bf16'], 1)}" if "gemm_peak_gflops_bf16" in d else "")
    return block(d, table(["training step, batch 128", "step", "÷ autograd", "÷ `nn.RNN`",
                           "fraction of GEMM peak", "peak step memory"], rows)
                 + ["", f"{d['train_steps']} steps, intra-op threads: {d['train_threads']}; "
                        f"{num(d['afrnn_train_gflop'], 2)} GFLOP of recurrence GEMMs a step; GEMM peak "
                        f"(`torch.mm`, 1024²) {peaks} GFLOP/s."])


def recurrence_inference(d: dict) -> str:
    rows = [["op floor: 784 bare batch-1 `addmm`s", f"{num(d['op_floor_ms'], 2)} ms", "1"]]
    for name, label in (("torchscript", "TorchScript (the exported artifact)"),
                        ("frozen", "`torch.jit.freeze` + `optimize_for_inference`"),
                        ("fast", "C loop (`model.inference.FastRecurrence`)")):
        if f"afrnn_batch1_{name}_ms" in d:
            rows.append([label, f"{num(d[f'afrnn_batch1_{name}_ms'], 2)} ms",
                         num(d[f"afrnn_batch1_{name}_vs_op_floor"], 2)])
    batches = sorted(int(k[len("afrnn_batch"):-len("_fast_ms")]) for k in d
                     if re.fullmatch(r"afrnn_batch\d+_fast_ms", k) and k != "afrnn_batch1_fast_ms")
    batched = [[str(b), f"{num(d[f'afrnn_batch{b}_torchscript_ms'], 1)} ms",
                f"{num(d[f'afrnn_batch{b}_fast_ms'], 1)} ms",
                num(d[f"afrnn_batch{b}_torchscript_vs_fast"], 2), num(d[f"afrnn_batch{b}_fast_gflops"], 1)]
               for b in batches]
    return block(d, table(["batch-1 forward, 784 steps, 1 thread", "time", "÷ op floor"], rows) + [""]
                 + table(["batch", "TorchScript", "C loop", "TorchScript ÷ C loop", "C loop GFLOP/s"],
                         batched))


def recurrence_thp(with_thp: dict, without: dict) -> str:
    """Training steps with transparent huge pages (the default) and without (``THP_MEM_ALLOC_ENABLE=0``)."""
    rows = []
    for path in ("autograd", "fused", "fused_bf16"):
        key = f"afrnn_train_s_{path}"
        if key in with_thp and key in without:
            rows.append([f"`{path.replace('_', '-')}`", f"{num(without[key], 3)} s",
                         f"{num(with_thp[key], 3)} s"])
    return "\n".join([run_line(without), run_line(with_thp), "",
                      *table(["training step", "without huge pages", "with (the default)"], rows)]) + "\n"


def streaming(d: dict) -> str:
    rows = []
    for key, label in (("batcher_1", "batcher, 1 stream"), ("batcher_64", "batcher, 64 streams"),
                       ("batcher_256", "batcher, 256 streams"),
                       ("batcher_256_unbatched", "batcher, 256 streams, unbatched"),
                       ("ws_1", "WebSocket, 1 stream"), ("ws_64", "WebSocket, 64 streams"),
                       ("ws_256", "WebSocket, 256 streams"),
                       ("ws_256_unbatched", "WebSocket, 256 streams, unbatched")):
        if key in d:
            r = d[key]
            rows.append([label, num(r["steps_per_s"], 1), f"{num(r['p50_ms'], 2)} ms",
                         f"{num(r['p99_ms'], 2)} ms",
                         num(r["mean_batch"], 1) if "mean_batch" in r else ""])
    ratios = f"256 streams, batched ÷ unbatched: batcher **{num(d['streams_256_batched_vs_unbatched'], 1)}**"
    if "ws_streams_256_batched_vs_unbatched" in d:
        ratios += f", WebSocket {num(d['ws_streams_256_batched_vs_unbatched'], 1)}"
    return block(d, table(["level", "steps/s", "p50 a chunk", "p99 a chunk", "streams a step"], rows)
                 + ["", ratios + " (goal ≥ 5 at the batcher)."])


def stability_report(d: dict) -> str:
    t = d["report_threads"]
    parts = d[f"afrnn_parts_{t}t"]
    split = ", ".join(f"{p} {num(parts[p], 2)} s" for p in ("spectrum", "gradients", "lyapunov", "forward")
                      if p in parts)
    rows = [["AFRNN, TorchScript", f"**{num(d['report_s'], 2)} s**", split],
            ["AFRNN, eager", f"{num(d['afrnn_eager_report_s'], 2)} s", ""],
            ["FRNN, TorchScript", f"{num(d['frnn_report_s'], 2)} s", ""],
            ["LSTM, TorchScript", f"{num(d['lstm_report_s'], 2)} s", ""],
            ["report PNG", f"{num(d['render_png_s'], 2)} s", f"{num(d['png_kb'], 0)} kB"],
            ["one 256 × 256 float64 eigensolve", f"{num(d['eigvals_256_ms'], 1)} ms",
             f"exact spectra at all 784 steps ≈ {num(d['exact_every_step_estimate_s'], 0)} s"]]
    return block(d, table(["report (random paper-size weights, 784 steps, k = 16)", "time", "of which"], rows)
                 + ["", f"Intra-op threads: {t}; median of {d['repeats']}; goal: AFRNN report < 5 s."])


def overheads(d: dict) -> str:
    rows = [["plain request through the ASGI app", f"{num(d['plain_request_us'], 0)} µs"],
            ["+ one `async def` dependency", f"+{num(d['dependency_us'], 0)} µs"],
            ["+ `require_api_key` (a `Security` header dependency)", f"+{num(d['api_key_us'], 0)} µs"],
            ["`json.loads`, 784-pixel body, 0–255 integers", f"{num(d['json_loads_int_us'], 0)} µs"],
            ["`pydantic_core.from_json`, same body",
             f"{num(d['from_json_int_us'], 0)} µs ({num(d['from_json_speedup_int'], 1)}× faster)"],
            ["`json.loads`, 784-pixel body, 0–1 floats", f"{num(d['json_loads_float_us'], 0)} µs"],
            ["`pydantic_core.from_json`, same body",
             f"{num(d['from_json_float_us'], 0)} µs ({num(d['from_json_speedup_float'], 1)}× faster)"],
            ["`import model.stability.plots` with torch loaded", f"{num(d['plots_import_s'], 2)} s"],
            ["256 × 256 `torch.linalg.eigvals`, float64", f"{num(d['eigvals_float64_ms'], 1)} ms"],
            ["the same in float32", f"{num(d['eigvals_float32_ms'], 1)} ms "
                                    f"({num(d['eigvals_float32_ratio'], 2)}×)"]]
    return block(d, table(["figure", "value"], rows))


V2_ARMS = {"classify": "`POST /classify`, JSON", "v2_json": "`POST /v2/models/mnist/infer`, JSON tensors",
           "v2_binary": "`POST /v2/models/mnist/infer`, binary tensors"}


def v2_vs_json(d: dict) -> str:
    rows = []
    for arm, label in V2_ARMS.items():
        a = d["arms"][arm]
        rows.append([label, num(a["per_s"], 1), f"{num(a['p50_ms'], 1)} / {num(a['p99_ms'], 1)} ms",
                     f"{num(a['server_cpu_ms_per_request'], 3)} ms",
                     f"{num(a['loop_cpu_ms_per_request'], 3)} ms",
                     str(a["errors"]), str(d["request_bytes"][arm])])
    rounds = ", ".join(num(r, 3) for r in d["round_ratios_binary_vs_classify"])
    header = ["route, one image a request", "req/s (median)", "p50 / p99", "server CPU a request",
              "of which the event loop", "errors", "request bytes"]
    return block(d, table(header, rows)
                 + ["", f"Binary V2 ÷ `/classify`: **{num(d['v2_binary_vs_classify'], 3)}** (rounds: "
                        f"{rounds}; goal ≥ 1.0); JSON V2 ÷ `/classify`: {num(d['v2_json_vs_classify'], 3)}. "
                        f"{d['clients']} clients, {d['rounds']} rounds of {num(d['seconds_per_run'], 0)} s "
                        f"per route, alternating; load generator {d['load_generator']}."])


def hot_swap(d: dict) -> str:
    steady, swaps = d["steady"], d["swaps"]
    loads = d["loads"]
    median_load = sorted(x["seconds"] for x in loads)[len(loads) // 2]
    rows = [
        ["steady: req/s; p50 / p99", f"{num(steady['per_s'], 1)}; {num(steady['p50_ms'], 1)} / "
                                     f"{num(steady['p99_ms'], 1)} ms", ""],
        ["during the swaps: req/s; p50 / p99", f"{num(swaps['per_s'], 1)}; {num(swaps['p50_ms'], 1)} / "
                                               f"{num(swaps['p99_ms'], 1)} ms", ""],
        ["loads under load (new versions + the changed artifact)",
         f"{d['versions']} + 1 in {num(d['swap_phase_s'], 1)} s, median {num(median_load, 2)} s each; "
         f"{d['loads_not_as_expected']} not as expected", ""],
        ["failed requests during the swaps (client errors + server non-200)", f"**{d['failed_requests']}**",
         "0"],
        ["p99 during the swaps ÷ steady", f"**{num(d['p99_swaps_vs_steady'], 2)}**", "≤ 2"],
        ["the changed artifact serves after its reload",
         "yes" if d["changed_version_serves"] else "**no**", ""],
        ["server RSS: at start; with all versions loaded", f"{num(d['rss_mb_start'], 0)} MB; "
                                                           f"{num(d['rss_mb_after_swaps'], 0)} MB", ""],
        [f"server RSS before / after {d['cycles']} unload + load cycles",
         f"{num(d['rss_mb_before'], 1)} / {num(d['rss_mb_after'], 1)} MB "
         f"(**{d['rss_growth'] * 100:+.1f} %**)", "≤ +10 %"],
    ]
    return block(d, table(["figure", "value", "goal"], rows)
                 + ["", f"{d['clients']} clients on `{d['route']}`; steady window {num(d['steady_s'], 0)} "
                        f"s; loads {num(d['swap_interval_s'], 1)} s apart; load generator "
                        f"{d['load_generator']}; {d['cycle_failures']} of {d['cycles']} cycles failed."])


def perf_analyzer(d: dict) -> str:
    rows = [[str(r["concurrency"]), num(r["infer_per_s"], 1), f"{num(r['p50_ms'], 1)} ms",
             f"{num(r['p90_ms'], 1)} ms", f"{num(r['p95_ms'], 1)} ms", f"{num(r['p99_ms'], 1)} ms"]
            for r in d["rows"]]
    return block(d, table(["concurrency", "infer/s", "p50", "p90", "p95", "p99"], rows)
                 + ["", f"{d['perf_analyzer']} in a Debian trixie root filesystem ({d['rootfs_glibc']}); "
                        f"concurrency range {d['concurrency_range']}, windows of "
                        f"{num(d['measurement_interval_ms'], 0)} ms, stability {d['stability_percentage']} "
                        f"%; the server's non-200 answers during the run: **{d['non_200_answers']}**."])


def current(data: dict[str, dict]) -> str:
    """The first screen: the headline figures, each with its goal and the run it comes from."""
    runs: list[str] = []

    def ref(name: str) -> str:
        line = run_line(data[name]).removeprefix("Run: ").rstrip(".")
        if line not in runs:
            runs.append(line)
        return f"[{runs.index(line) + 1}]"

    rows = []
    if "service_load" in data:
        s = data["service_load"]
        rows += [["`/classify`, 64 clients ÷ the forward's own ceiling", num(s["batched_vs_ceiling"], 3),
                  "≥ 0.85",
                  ref("service_load")],
                 ["the serving stack's CPU a request, 64 clients", f"{num(s['stack_cpu_ms_64'], 3)} ms",
                  "≤ 0.3 ms",
                  ref("service_load")],
                 ["one client's p50 ÷ the bare batch-1 forward", num(s["single_p50_vs_bare"], 3), "≤ 1.3",
                  ref("service_load")]]
    if "ceiling_ratio" in data:
        c = data["ceiling_ratio"]
        rows.append(["the same ceiling ratio, alternating rounds: median (range)",
                     f"{num(c['median_ratio'], 3)} ({num(c['min_ratio'], 3)}–{num(c['max_ratio'], 3)})",
                     "≥ 0.85",
                     ref("ceiling_ratio")])
    if "peer_compare" in data:
        p = data["peer_compare"]
        stack = " / ".join(num(p[f"stack_{c}_c{n}_vs_peer"], 2) for c in ("quiet", "busy") for n in (8, 64))
        rows += [["stack-only ÷ LitServe throughput, quiet c = 8 / 64, busy c = 8 / 64", stack, "≥ 1.3",
                  ref("peer_compare")],
                 ["ours (C loop) ÷ LitServe throughput, quiet c = 64", num(p["quiet_c64_vs_peer"], 2), "",
                  ref("peer_compare")]]
    if "http_floor" in data:
        h = data["http_floor"]
        rows.append(["floor under the stack's CPU (uvicorn + parse + decode, at the service's rate)",
                     f"{num(h['decode-paced']['server_cpu_ms_per_request_median'], 3)} ms", "",
                     ref("http_floor")])
    if "recurrence" in data:
        r = data["recurrence"]
        rows += [["batch-1 784-step forward, C loop ÷ op floor",
                  f"{num(r['afrnn_batch1_fast_vs_op_floor'], 2)} ({num(r['afrnn_batch1_fast_ms'], 2)} ms)",
                  "≤ 1.3", ref("recurrence")],
                 ["training step (batch 128), fused fp32 ÷ GEMM peak",
                  num(r["afrnn_train_vs_gemm_peak_fused"], 2),
                  "≥ 0.7", ref("recurrence")]]
        if "afrnn_train_vs_autograd_fused_bf16" in r:
            rows.append(["training step, fused-bf16 ÷ autograd",
                         num(r["afrnn_train_vs_autograd_fused_bf16"], 2),
                         "≤ 0.6", ref("recurrence")])
    if "streaming" in data:
        rows.append(["256 streams, batched ÷ unbatched steps/s",
                     num(data["streaming"]["streams_256_batched_vs_unbatched"], 1), "≥ 5", ref("streaming")])
    if "stability_report" in data:
        rows.append(["stability report, pixel-MNIST AFRNN",
                     f"{num(data['stability_report']['report_s'], 2)} s",
                     "< 5 s", ref("stability_report")])
    lines = table(["figure", "value", "goal", "run"], rows) + [""]
    lines += [f"{i + 1}. {line}." for i, line in enumerate(runs)]
    return "\n".join(lines) + "\n"


# name: (the JSON files it reads, its renderer, called with one dict per file, in order)
TABLES: dict[str, tuple[tuple[str, ...], Callable[..., str]]] = {
    "service-load": (("service_load",), service_load),
    "ceiling-ratio": (("ceiling_ratio",), ceiling_ratio),
    "service-vs-litserve": (("peer_compare",), peer_compare),
    "http-floor": (("http_floor",), http_floor),
    "recurrence-training": (("recurrence",), recurrence_training),
    "recurrence-inference": (("recurrence",), recurrence_inference),
    "recurrence-thp": (("recurrence", "recurrence_nothp"), recurrence_thp),
    "streaming": (("streaming",), streaming),
    "stability-report": (("stability_report",), stability_report),
    "fixed-costs": (("overheads",), overheads),
    "v2-vs-json": (("v2_vs_json",), v2_vs_json),
    "hot-swap": (("hot_swap",), hot_swap),
    "perf-analyzer": (("perf_analyzer",), perf_analyzer),
}
# the first screen's table reads whichever of these the folder has
CURRENT_SOURCES = ("service_load", "ceiling_ratio", "peer_compare", "http_floor", "recurrence", "streaming",
                   "stability_report")


def load(folder: Path) -> dict[str, dict]:
    """Every ``<name>.json`` of the folder that holds a JSON object."""
    data = {}
    for path in sorted(folder.glob("*.json")):
        value = json.loads(path.read_text())
        if isinstance(value, dict) and "machine" in value:
            data[path.stem] = value
    return data


def render(doc: str, data: dict[str, dict]) -> tuple[str, list[str]]:
    """(the doc with every table whose sources are in ``data`` rewritten, the names of those tables)."""
    done: list[str] = []

    def replace(match: re.Match) -> str:
        name = match["name"]
        if name == "current":
            present = {k: data[k] for k in CURRENT_SOURCES if k in data}
            if not present:
                return match[0]
            body = current(present)
        elif name in TABLES:
            sources, fn = TABLES[name]
            if not all(source in data for source in sources):
                return match[0]
            body = fn(*(data[source] for source in sources))
        else:
            return match[0]
        done.append(name)
        return match[1] + body + match[4]

    return BLOCK.sub(replace, doc), done


def table_names(doc: str) -> list[str]:
    return [m["name"] for m in BLOCK.finditer(doc)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="the benchmarks' JSON files (<name>.json)")
    parser.add_argument("--doc", type=Path, default=DOC)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a table would change")
    args = parser.parse_args()
    data = load(args.folder)
    before = args.doc.read_text()
    after, done = render(before, data)
    unknown = sorted(set(table_names(before)) - set(TABLES) - {"current"})
    if unknown:
        sys.exit(f"no renderer for the tables {unknown}")
    if args.check:
        if after != before:
            sys.exit(f"{args.doc}: tables differ from {args.folder}")
        print(f"{args.doc}: {len(done)} tables match {args.folder}")
        return
    args.doc.write_text(after)
    print(f"{args.doc}: rendered {', '.join(done) or 'nothing'} from {args.folder} ({len(data)} JSON files)")


if __name__ == "__main__":
    main()
