"""Run every benchmark under bench/, one at a time, and write each one's JSON figures to a folder.

    python bench/run_all.py --quick --out bench/out              # what `make bench` runs (each < 45 s)
    python bench/run_all.py --out docs/performance-data          # the full runs the docs' tables show
    python bench/run_all.py --quick --only service_load,recurrence

Each benchmark prints one JSON object as its last output line; it is written, as printed, to
``<out>/<name>.json``. A benchmark whose last line is not a JSON object fails the run (exit status 1)
after the others have run. ``<out>/run.json`` records each one's command, exit status and wall time.
Then ``python bench/render_tables.py <out>`` writes the tables of docs/performance.md from the folder.

The full commands are the ones whose recorded runs docs/performance.md shows; ``paper_figures`` has no
full run here (its full run rewrites docs/figures/).
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO_ROOT = BENCH.parent

# name: the extra arguments of the full run (None: quick only)
BENCHMARKS: dict[str, list[str] | None] = {
    "recurrence": ["--threads", "1"],
    "stability_report": [],
    "overheads": [],
    "streaming": [],
    "service_load": [],
    "ceiling_ratio": [],
    "http_floor": [],
    "peer_compare": ["--rounds", "2", "--seconds", "4"],
    "soak": [],
    "signing_verify": [],
    "v2_vs_json": [],
    "hot_swap": [],
    "paper_figures": None,
}


def command(name: str, quick: bool) -> list[str]:
    extra = ["--quick"] if quick else BENCHMARKS[name]
    return [sys.executable, str(BENCH / f"{name}.py"), *extra]


def last_json(stdout: str) -> dict | None:
    """The benchmark's figures: its last non-empty output line, when that is a JSON object."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    try:
        figures = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        return None
    return figures if isinstance(figures, dict) else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="each benchmark's --quick (< 45 s each)")
    parser.add_argument("--out", type=Path, default=BENCH / "out", help="folder of the JSON files")
    parser.add_argument("--only", help="comma-separated benchmark names (default: all)")
    parser.add_argument("--timeout-s", type=float, help="per benchmark (default 300 quick, 1800 full)")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmarks {unknown}; known: {', '.join(BENCHMARKS)}")
    if not args.quick:
        names = [n for n in names if BENCHMARKS[n] is not None]
    timeout_s = args.timeout_s or (300.0 if args.quick else 1800.0)
    args.out.mkdir(parents=True, exist_ok=True)
    run_record = args.out / "run.json"            # earlier runs into the same folder stay recorded
    record: dict[str, dict] = json.loads(run_record.read_text()) if run_record.is_file() else {}
    for name in names:
        argv = command(name, args.quick)
        shown = " ".join(["python", str(Path(argv[1]).relative_to(REPO_ROOT)), *argv[2:]])
        print(f"== {shown}", flush=True)
        started = time.perf_counter()
        try:
            done = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout_s)
            rc, stdout, stderr = done.returncode, done.stdout, done.stderr
        except subprocess.TimeoutExpired as expired:
            rc, stdout = "timeout", (expired.stdout or b"").decode(errors="replace")
            stderr = (expired.stderr or b"").decode(errors="replace")
        wall_s = round(time.perf_counter() - started, 1)
        figures = last_json(stdout) if rc == 0 else None
        if figures is not None:
            (args.out / f"{name}.json").write_text(json.dumps(figures, indent=1) + "\n")
        else:
            tail = "\n".join((stdout + stderr).splitlines()[-15:])
            print(f"   FAILED (exit {rc}; last line not a JSON object):\n{tail}", flush=True)
        print(f"   {wall_s} s", flush=True)
        record[name] = {"command": shown, "exit": rc, "json": figures is not None, "wall_s": wall_s}
    run_record.write_text(json.dumps(record, indent=1) + "\n")
    total = sum(record[name]["wall_s"] for name in names)
    print(f"{len(names)} benchmarks in {total:.0f} s; JSON in {args.out}")
    if not all(record[name]["json"] for name in names):
        sys.exit(1)


if __name__ == "__main__":
    main()
