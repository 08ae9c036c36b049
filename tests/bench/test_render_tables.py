"""``bench/render_tables.py``: every table of docs/performance.md is what it renders from the committed
runs in docs/performance-data/, and it reads every field the tables show from JSON in the shape the
benchmarks print (fixtures written here, each figure a distinct value that must appear in its table).
Also: ``make bench`` (``bench/run_all.py``) runs every benchmark that has a ``--quick``."""

import copy
import importlib.util
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"
DOC = REPO / "docs" / "performance.md"
DATA = REPO / "docs" / "performance-data"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render_tables = _load("render_tables")
run_all = _load("run_all")


def machine(command: str) -> dict:
    return {"cpu_model": "Test CPU 9000", "cpu_flags": ["avx", "avx2", "avx512f", "fma"], "cpus": 2,
            "arch": "x86_64", "torch": "2.13.0+cpu", "python": "3.11.7", "date": "2031-02-03",
            "command": command, "load_average_1min": 0.5}


def loadgen_row(per_s: float, p50: float, p99: float, cpu: float, batch: float, loop: float) -> dict:
    """One setting of bench/loadgen.py's ``closed_loop``."""
    return {"requests": 100, "errors": 0, "error_kinds": {}, "per_s": per_s, "window_s": 8.0, "p50_ms": p50,
            "p99_ms": p99, "generator": "wrk", "clients": 64, "client_cpu_ms_per_request": 0.05,
            "server_cpu_ms_per_request": cpu, "mean_batch_size": batch, "forward_ms_per_request": 1.3,
            "loop_cpu_ms_per_request": loop}


# The figures each fixture gives (value → how the table must show it), per table.
SHOWN: dict[str, list[str]] = {}


def fixtures() -> dict[str, dict]:
    service_load = {
        "raw_ceiling_per_s": 811.7, "raw_ceiling_batch": 24, "raw_torchscript_ceiling_per_s": 401.0,
        "bare_forward_ms": 2.71, "bare_forward_cpu_ms": 2.8, "bare_forward_after_idle_ms": 3.33,
        "bare_path": "fast", "bare_torchscript_ms": 9.5, "batched_64_per_s": 702.4,
        "unbatched_64_per_s": 288.8,
        "stack_cpu_ms_64": 0.377, "server_cpu_ms_64": 1.654, "single_p50_ms": 3.19,
        "batched_vs_ceiling": 0.865, "raw_ceiling_busy_cores_per_s": 790.0, "batched_vs_busy_ceiling": 0.889,
        "raw_at_served_batch_per_s": 800.0, "batched_vs_raw_at_served_batch": 0.878,
        "batched_vs_unbatched": 2.43, "single_p50_vs_bare": 1.177,
        "raw_per_batch_size": {"1": 370.0, "24": 811.7},
        "settings": {"batched_64": loadgen_row(702.4, 88.1, 111.9, 1.654, 30.6, 0.377),
                     "unbatched_64": loadgen_row(288.8, 200.0, 250.0, 3.0, 1.0, 0.5)},
        "load_generator": "wrk", "server_loop": "uvloop", "server_http": "httptools", "server_args": "",
        "fast_recurrence_env": "1", "torch_threads": 1, "max_batch_size": 32, "max_queue_delay_ms": 20.0,
        "seconds_per_setting": 1.2, "load_average_before": 0.4, "model": "checkpoints/mnist.json",
        "machine": machine("python bench/service_load.py --quick"), "wall_s": 40.0, "quick": True}
    SHOWN["service-load"] = ["811.7 (batch 24)", "702.4", "0.865", "0.889", "30.6; 88.1 / 111.9 ms",
                             "0.377 ms", "1.654 ms", "3.19 ms", "2.71 ms (3.33 ms)", "1.177", "288.8", "2.43",
                             "python bench/service_load.py --quick", "(quick mode)", "Test CPU 9000",
                             "2031-02-03", "avx2 avx512f"]
    ceiling = {"rounds": [{"ceiling_per_s": 821.5, "raw_per_batch": {"24": 821.5}, "c64_per_s": 733.1,
                           "ratio": 0.892},
                          {"ceiling_per_s": 805.2, "raw_per_batch": {"24": 805.2}, "c64_per_s": 640.4,
                           "ratio": 0.795}],
               "ratios": [0.892, 0.795], "median_ratio": 0.8435, "min_ratio": 0.795, "max_ratio": 0.892,
               "quick": True, "max_batch_size": 32, "max_queue_delay_ms": 20.0, "load_generator": "wrk",
               "load_average_before": 0.3, "wall_s": 30.0,
               "machine": machine("python bench/ceiling_ratio.py --quick")}
    SHOWN["ceiling-ratio"] = ["821.5", "733.1", "0.892", "805.2", "640.4", "0.795", "**0.844**"]
    points = {cond: {f"c{n}": {key: {"per_s": 100.0 + n + i, "p50_ms": 5.0, "p99_ms": 9.0, "errors": 0,
                                     "server_cpu_ms_per_request": round(k * 1.01 + n / 100 + i / 1000, 3),
                                     "rounds_per_s": [100.0]}
                               for i, (k, key) in enumerate([(3, "ours"), (5, "stack"), (7, "peer")])}
                     for n in (1, 8, 64)}
              for cond in ("quiet", "busy")}
    peer = {"quiet_c1_vs_peer": 4.11, "quiet_c8_vs_peer": 3.12, "quiet_c64_vs_peer": 2.63,
            "busy_c1_vs_peer": 3.61, "busy_c8_vs_peer": 3.36, "busy_c64_vs_peer": 2.71,
            "c1_p50_vs_peer": 0.217,
            "stack_quiet_c1_vs_peer": 1.31, "stack_quiet_c8_vs_peer": 1.47, "stack_quiet_c64_vs_peer": 1.19,
            "stack_busy_c1_vs_peer": 1.17, "stack_busy_c8_vs_peer": 1.52, "stack_busy_c64_vs_peer": 1.39,
            "stack_c1_p50_vs_peer": 0.671, "peer": "litserve 0.2.19", "load_generator": "wrk",
            "points": points, "quick": True, "rounds": 1, "seconds_per_run": 1.0, "server_args": "",
            "load_average_before": 0.2,
            "wall_s": 40.0, "machine": machine("python bench/peer_compare.py --quick")}
    SHOWN["service-vs-litserve"] = ["4.11", "3.12", "2.63", "3.61", "3.36", "2.71", "**1.31**", "**1.47**",
                                    "**1.19**", "**1.17**", "**1.52**", "**1.39**", "0.217", "0.671",
                                    "litserve 0.2.19", "5.06 / 7.08", "5.69 / 7.71"]
    http = {"quick": True, "clients": 64, "rounds": 1, "seconds": 1.0, "pace_ms": 90.0,
            "load_generator": "wrk",
            "machine": machine("python bench/http_floor.py --quick")}
    for i, app in enumerate(("bare", "parse", "decode", "fastapi", "bare-paced", "decode-paced")):
        http[app] = {"server_cpu_ms_per_request_median": 0.051 + i / 10, "server_cpu_ms_per_request": [0.05],
                     "per_s": [1000.0 + 111 * i]}
    SHOWN["http-floor"] = ["1\u202f000", "0.051 ms", "1\u202f555", "0.551 ms"]
    recurrence = {
        "afrnn_train_s_autograd": 0.6011, "afrnn_autograd_peak_step_mb": 361.0, "afrnn_train_s_fused": 0.5322,
        "afrnn_fused_peak_step_mb": 407.0, "afrnn_train_s_fused_bf16": 0.2533,
        "afrnn_fused_bf16_peak_step_mb": 363.0,
        "afrnn_train_s": 0.5322, "rnn_train_s": 0.5404, "lstm_train_s": 0.3476,
        "reference_style_train_s": 0.9371,
        "afrnn_vs_rnn_train_ratio_autograd": 1.112, "afrnn_vs_rnn_train_ratio_fused": 0.985,
        "afrnn_vs_rnn_train_ratio_fused_bf16": 0.469, "afrnn_vs_rnn_train_ratio": 0.985,
        "lstm_vs_rnn_train_ratio": 0.643, "reference_style_vs_rnn_train_ratio": 1.734,
        "afrnn_train_vs_autograd_autograd": 1.0, "afrnn_train_vs_autograd_fused": 0.886,
        "afrnn_train_vs_autograd_fused_bf16": 0.421, "reference_style_vs_afrnn_ratio": 1.761,
        "afrnn_train_gflop": 9.87, "gemm_peak_gflops": 98.76, "afrnn_train_gflops_autograd": 16.4,
        "afrnn_train_vs_gemm_peak_autograd": 0.166, "afrnn_train_gflops_fused": 18.5,
        "afrnn_train_vs_gemm_peak_fused": 0.187, "afrnn_train_vs_gemm_peak": 0.187,
        "gemm_peak_gflops_bf16": 431.9, "afrnn_train_gflops_fused_bf16": 39.0,
        "afrnn_train_vs_gemm_peak_fused_bf16": 0.0903,
        "op_floor_ms": 3.07, "addmm_batch1_us": 3.91, "afrnn_batch1_torchscript_ms": 5.18,
        "afrnn_batch1_torchscript_vs_op_floor": 1.687, "afrnn_batch1_frozen_ms": 4.96,
        "afrnn_batch1_frozen_vs_op_floor": 1.616, "afrnn_batch1_fast_ms": 1.83,
        "afrnn_batch1_fast_vs_op_floor": 0.596, "afrnn_batch1_served_path": "fast",
        "afrnn_batch1_vs_op_floor": 0.596,
        "afrnn_batch8_torchscript_ms": 17.84, "afrnn_batch8_fast_ms": 8.73, "afrnn_batch8_fast_gflops": 94.2,
        "afrnn_batch8_torchscript_vs_fast": 2.044, "afrnn_batch8_fast_max_abs_diff": 4e-7,
        "afrnn_batch64_torchscript_ms": 102.91, "afrnn_batch64_fast_ms": 65.33,
        "afrnn_batch64_fast_gflops": 100.7,
        "afrnn_batch64_torchscript_vs_fast": 1.575, "afrnn_batch64_fast_max_abs_diff": 6e-7,
        "afrnn_batch1_ms_1thread": 5.2, "afrnn_batch1_ms_2thread": 5.5, "afrnn_batch1_ms": 5.2,
        "quick": True, "train_steps": 196, "train_threads": 2, "thp": "1", "load_average_before": 0.5,
        "machine": machine("python bench/recurrence.py --quick")}
    SHOWN["recurrence-training"] = ["0.601 s", "0.532 s", "0.253 s", "0.89", "0.42", "1.11", "0.98", "0.47",
                                    "0.19 of fp32", "0.09 of bf16", "361 MB", "407 MB", "363 MB", "0.540 s",
                                    "0.348 s", "0.64", "0.937 s", "1.73", "196 steps", "9.87 GFLOP",
                                    "fp32 98.8", "bf16 431.9"]
    SHOWN["recurrence-inference"] = ["3.07 ms", "5.18 ms", "1.69", "4.96 ms", "1.62", "1.83 ms", "0.60",
                                     "17.8 ms", "8.7 ms", "2.04", "94.2", "102.9 ms", "65.3 ms", "1.57",
                                     "100.7"]
    nothp = copy.deepcopy(recurrence) | {
        "afrnn_train_s_autograd": 0.6077, "afrnn_train_s_fused": 0.6322, "afrnn_train_s_fused_bf16": 0.3611,
        "thp": "0", "machine": machine("THP_MEM_ALLOC_ENABLE=0 python bench/recurrence.py")}
    SHOWN["recurrence-thp"] = ["0.608 s", "0.632 s", "0.361 s", "0.601 s", "0.532 s", "0.253 s",
                               "THP_MEM_ALLOC_ENABLE=0 python bench/recurrence.py"]

    def stream(steps: float, p50: float, p99: float, batch: float | None = None) -> dict:
        return {"steps_per_s": steps, "p50_ms": p50, "p99_ms": p99} | ({"mean_batch": batch} if batch else {})

    streaming = {"load_average_before": 0.5, "quick": True, "native_advance": True,
                 "batcher_1": stream(1101.5, 0.44, 1.21, 1.0), "batcher_64": stream(30111.2, 1.9, 4.4, 63.5),
                 "batcher_256": stream(60222.3, 4.1, 9.9, 250.2),
                 "batcher_256_unbatched": stream(2111.4, 100.1, 130.2, 1.0),
                 "streams_256_batched_vs_unbatched": 28.5, "goal_met": True,
                 "machine": machine("python bench/streaming.py --quick")}
    SHOWN["streaming"] = ["1\u202f101.5", "0.44 ms", "1.21 ms", "30\u202f111.2", "63.5", "60\u202f222.3",
                          "250.2", "2\u202f111.4", "100.10 ms", "**28.5**"]
    parts = {"forward": 0.021, "jacobians": 0.1, "spectrum": 0.581, "discrete": 0.01, "gradients": 1.271,
             "lyapunov": 0.071, "trajectory": 0.01}
    stability = {"afrnn_report_s_1t": 1.971, "afrnn_parts_1t": parts, "report_s": 1.971, "report_threads": 1,
                 "skipped_threads": [], "afrnn_summary": {"verdict": "stable"}, "report_json_kb": 364.0,
                 "render_png_s": 1.46, "png_kb": 210.0, "afrnn_eager_report_s": 2.31, "frnn_report_s": 2.22,
                 "lstm_report_s": 4.44, "eigvals_256_ms": 29.9, "exact_every_step_estimate_s": 46.9,
                 "quick": True, "repeats": 1, "load_average_before": 0.5,
                 "machine": machine("python bench/stability_report.py --quick")}
    SHOWN["stability-report"] = ["**1.97 s**", "spectrum 0.58 s", "gradients 1.27 s", "lyapunov 0.07 s",
                                 "forward 0.02 s", "2.31 s", "2.22 s", "4.44 s", "1.46 s", "210 kB",
                                 "29.9 ms",
                                 "≈ 47 s", "median of 1"]
    overheads = {"quick": True, "torch_threads": 1, "load_average_before": 0.5, "plain_request_us": 261.0,
                 "dependency_us": 44.0, "api_key_us": 133.0, "json_loads_int_us": 45.0,
                 "from_json_int_us": 15.0,
                 "from_json_speedup_int": 3.0, "json_loads_float_us": 236.0, "from_json_float_us": 28.0,
                 "from_json_speedup_float": 8.43, "plots_import_s": 0.87, "eigvals_float64_ms": 34.0,
                 "eigvals_float32_ms": 14.7, "eigvals_float32_ratio": 0.43,
                 "machine": machine("python bench/overheads.py --quick")}
    SHOWN["fixed-costs"] = ["261 µs", "+44 µs", "+133 µs", "45 µs", "15 µs (3.0× faster)", "236 µs",
                            "28 µs (8.4× faster)", "0.87 s", "34.0 ms", "14.7 ms (0.43×)"]
    SHOWN["current"] = ["0.865", "0.377 ms", "1.177", "0.844 (0.795–0.892)", "1.47 / 1.19 / 1.52 / 1.39",
                        "2.63", "0.551 ms", "0.60 (1.83 ms)", "0.19", "0.42", "28.5", "1.97 s",
                        "1. `python bench/service_load.py --quick` (quick mode); Test CPU 9000"]

    def arm(per_s: float, p50: float, p99: float, cpu: float, loop: float) -> dict:
        """One route of bench/v2_vs_json.py: the medians over its rounds."""
        return {"per_s": per_s, "p50_ms": p50, "p99_ms": p99, "server_cpu_ms_per_request": cpu,
                "loop_cpu_ms_per_request": loop, "mean_batch_size": 12.0, "client_cpu_ms_per_request": 0.03,
                "errors": 0, "rounds_per_s": [per_s], "rounds_p99_ms": [p99]}

    v2 = {"v2_binary_vs_classify": 0.939, "v2_json_vs_classify": 0.898,
          "round_ratios_binary_vs_classify": [0.964, 0.906, 0.948], "goal_met": False,
          "arms": {"classify": arm(551.1, 28.71, 38.37, 1.794, 0.358),
                   "v2_json": arm(495.0, 30.75, 53.53, 1.985, 0.574),
                   "v2_binary": arm(517.4, 29.77, 54.41, 2.007, 0.571)},
          "clients": 16, "rounds": 3, "seconds_per_run": 6.0,
          "request_bytes": {"classify": 2586, "v2_json": 2624, "v2_binary": 1009}, "load_generator": "wrk",
          "server_args": "", "quick": False, "load_average_before": 3.48, "wall_s": 68.0,
          "machine": machine("python bench/v2_vs_json.py")}
    SHOWN["v2-vs-json"] = ["551.1", "28.7 / 38.4 ms", "1.794 ms", "0.358 ms", "2586", "495.0",
                           "30.8 / 53.5 ms", "1.985 ms", "0.574 ms", "2624", "517.4", "29.8 / 54.4 ms",
                           "2.007 ms", "0.571 ms",
                           "1009", "**0.939**", "0.964, 0.906, 0.948", "0.898", "16 clients, 3 rounds of 6 s",
                           "`python bench/v2_vs_json.py`;"]
    loads = [{"version": v, "seconds": 0.2 + v / 100, "status": 200, "loaded": [str(v)], "serving": str(v)}
             for v in range(2, 12)]
    loads.append({"version": 11, "changed_artifact": True, "seconds": 0.5, "status": 200, "loaded": ["11"],
                  "retired": ["11"], "serving": "11"})
    swap = {"failed_requests": 0, "p99_swaps_vs_steady": 2.328, "rss_growth": 0.0506,
            "goals_met": {"no_failed_requests": True, "p99_within_2x": False, "rss_within_10_percent": True},
            "steady": loadgen_row(618.6, 25.56, 34.1, 1.673, 12.3, 0.316),
            "swaps": {"requests": 9022, "errors": 0, "error_kinds": {}, "per_s": 521.8, "window_s": 17.3,
                      "p50_ms": 26.96, "p99_ms": 79.39},
            "server_non_200_during_swaps": {}, "loads": loads, "loads_not_as_expected": 0,
            "swap_phase_s": 15.26,
            "versions": 10, "swap_interval_s": 1.0, "served_version_after": "v-reweighted",
            "changed_version": "v-reweighted", "changed_version_serves": True, "rss_mb_start": 341.4,
            "rss_mb_after_swaps": 432.1, "rss_mb_before": 431.9, "rss_mb_after": 453.8,
            "rss_mb_trace": [441.5, 453.8], "cycles": 50, "cycle_failures": 0, "clients": 16,
            "route": "/classify", "steady_s": 15.0, "load_generator": "wrk", "quick": False,
            "load_average_before": 2.02, "wall_s": 47.6, "machine": machine("python bench/hot_swap.py")}
    SHOWN["hot-swap"] = ["618.6; 25.6 / 34.1 ms", "521.8; 27.0 / 79.4 ms",
                         "10 + 1 in 15.3 s, median 0.27 s each", "0 not as expected", "**0**", "**2.33**",
                         "| yes |", "341 MB; 432 MB",
                         "before / after 50 unload + load cycles", "431.9 / 453.8 MB (**+5.1 %**)",
                         "16 clients on `/classify`", "0 of 50 cycles failed"]

    def level(c: int, per_s: float, p50: float) -> dict:
        return {"concurrency": c, "infer_per_s": per_s, "p50_ms": p50, "p90_ms": p50 + 1, "p95_ms": p50 + 2,
                "p99_ms": p50 + 3, "client_send_us": 150, "client_recv_us": 1}

    perf = {"rows": [level(1, 73.2, 10.68), level(64, 143.9, 389.56)], "concurrencies": [1, 64],
            "max_infer_per_s": 143.9, "answers_during_run": {"POST /v2/models/{name}/infer 200": 847},
            "non_200_answers": 0, "perf_analyzer": "Perf Analyzer Version 2.60.0 (commit unknown)",
            "rootfs_glibc": "ldd (Debian GLIBC 2.41-12) 2.41", "host_error": "version `GLIBC_2.38' not found",
            "concurrency_range": "1:64:63", "measurement_interval_ms": 1000, "stability_percentage": 30,
            "quick": True, "machine": machine("bench/perf_analyzer.sh --quick")}
    SHOWN["perf-analyzer"] = ["| 1 | 73.2 | 10.7 ms | 11.7 ms | 12.7 ms | 13.7 ms |",
                              "| 64 | 143.9 | 389.6 ms | 390.6 ms | 391.6 ms | 392.6 ms |",
                              "Perf Analyzer Version 2.60.0", "GLIBC 2.41", "1:64:63", "1\u202f000 ms",
                              "stability 30 %", "**0**", "`bench/perf_analyzer.sh --quick` (quick mode)"]
    return {"service_load": service_load, "ceiling_ratio": ceiling, "peer_compare": peer, "http_floor": http,
            "recurrence": recurrence, "recurrence_nothp": nothp, "streaming": streaming,
            "stability_report": stability, "overheads": overheads, "v2_vs_json": v2, "hot_swap": swap,
            "perf_analyzer": perf}


def blocks(doc: str) -> dict[str, str]:
    return {m["name"]: m["body"] for m in render_tables.BLOCK.finditer(doc)}


def test_every_table_of_the_doc_has_a_renderer():
    names = render_tables.table_names(DOC.read_text())
    assert names and set(names) <= set(render_tables.TABLES) | {"current"}
    assert len(names) == len(set(names))


def test_each_table_shows_the_figures_of_json_in_the_benchmarks_shape(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    for name, figures in fixtures().items():
        (folder / f"{name}.json").write_text(json.dumps(figures))
    empty = "\n".join(f"<!-- table:{name} -->\nstale\n<!-- /table -->" for name in render_tables.table_names(
        DOC.read_text()))
    rendered, done = render_tables.render(empty, render_tables.load(folder))
    assert sorted(done) == sorted(render_tables.table_names(DOC.read_text()))
    for name, body in blocks(rendered).items():
        assert "stale" not in body
        missing = [shown for shown in SHOWN[name] if shown not in body]
        assert not missing, f"table {name} lacks {missing}:\n{body}"


@pytest.mark.parametrize("table", ["service-load", "recurrence-training", "service-vs-litserve", "v2-vs-json",
                                   "hot-swap", "perf-analyzer"])
def test_a_field_the_table_reads_missing_from_the_json_is_an_error(tmp_path, table):
    sources, fn = render_tables.TABLES[table]
    data = fixtures()[sources[0]]
    used = {"service-load": "stack_cpu_ms_64", "recurrence-training": "afrnn_train_s_fused",
            "service-vs-litserve": "stack_busy_c64_vs_peer", "v2-vs-json": "v2_binary_vs_classify",
            "hot-swap": "p99_swaps_vs_steady", "perf-analyzer": "non_200_answers"}[table]
    del data[used]
    with pytest.raises(KeyError):
        fn(data, *(fixtures()[s] for s in sources[1:]))


def test_a_table_without_its_json_is_left_as_it_is():
    doc = "<!-- table:service-load -->\nkept\n<!-- /table -->\n"
    assert render_tables.render(doc, {"overheads": fixtures()["overheads"]}) == (doc, [])


def test_the_doc_shows_exactly_the_committed_runs():
    """No table number without a committed source: every table of docs/performance.md is what the
    renderer makes of docs/performance-data/, and every table has its JSON there."""
    doc = DOC.read_text()
    rendered, done = render_tables.render(doc, render_tables.load(DATA))
    assert sorted(done) == sorted(render_tables.table_names(doc)), "a table has no committed JSON"
    assert rendered == doc, "run: python bench/render_tables.py docs/performance-data"


def test_every_committed_run_records_its_machine():
    for path in sorted(DATA.glob("*.json")):
        if path.name == "run.json":          # bench/run_all.py's own log of a run into this folder
            continue
        record = json.loads(path.read_text())["machine"]
        assert record["cpu_model"] and record["command"].split()[-1] and re.fullmatch(
            r"\d{4}-\d{2}-\d{2}", record["date"]), path.name
        assert "bench/" in record["command"], path.name


def test_make_bench_runs_every_benchmark_with_a_quick_mode():
    with_quick = {path.stem for path in BENCH.glob("*.py")
                  if path.stem != "run_all" and 'add_argument("--quick"' in path.read_text()}
    assert with_quick == set(run_all.BENCHMARKS)


def test_the_figures_are_the_last_output_line_when_it_is_a_json_object():
    assert run_all.last_json('progress\n{"a": 1}\n\n') == {"a": 1}
    assert run_all.last_json('{"a": 1}\ndone\n') is None
    assert run_all.last_json("[1, 2]\n") is None
    assert run_all.last_json("") is None
