#!/usr/bin/env bash
# Triton's perf_analyzer against the service's Open Inference Protocol (KServe V2) route, on a host
# whose glibc is older than the binary's.
#
#     bench/perf_analyzer.sh                      # concurrency 1:64:9, 2 s windows -> docs/performance-data
#     bench/perf_analyzer.sh --quick --out bench/out     # concurrency 1 and 64, 1 s windows
#     bench/perf_analyzer.sh --range 1:64:3 --interval-ms 3000
#
# The perf_analyzer binary comes with the tritonclient wheel (.venv/bin/perf_analyzer, tritonclient
# 2.60.0). It needs glibc >= 2.38 and GLIBCXX_3.4.32; Debian 12 has glibc 2.36, where it does not start
# ("version `GLIBC_2.38' not found"). So it runs in a Debian trixie root filesystem (glibc 2.41),
# built once with mmdebstrap (essential packages + the binary's shared libraries: libstdc++6, zlib1g,
# libssl3t64, libgcc-s1) and cached in $AFRNN_PERF_ANALYZER_ROOTFS (default
# ~/.cache/afrnn/perf-analyzer-rootfs, about 110 MB). The binary is copied in whenever it differs
# from the venv's. It runs with chroot in a private mount namespace (unshare; /proc mounted there and
# gone with the namespace) and shares the host's network namespace, so it reaches the service on
# 127.0.0.1. Needs root (chroot, mount) and, for the first build, deb.debian.org.
#
# The service: python -m service on a free port, serving checkpoints/mnist.json alone, one torch
# thread, max queue length 1024, otherwise its defaults. perf_analyzer reads GET /v2, GET
# /v2/models/mnist and /v2/models/mnist/config, then sends synchronous requests of one image
# (pixels UINT8 [1, 784], random bytes; binary tensors, its default) at each concurrency of the range,
# each level measured in windows of --interval-ms until 3 consecutive windows agree within --stability
# percent (default 50: this is a shared 2-core machine; perf_analyzer's default 10 % rarely settles
# there), at most --max-trials windows (default 20). An error answer makes perf_analyzer exit
# non-zero; a level that does not settle ends its sweep. Either fails this script (exit status 1), as
# does any non-200 answer of the server during the run.
#
# Writes <out>/perf_analyzer.csv (perf_analyzer's -f output) and <out>/perf_analyzer.json (the
# rows, the server's non-200 answers counted from its /metrics, the machine record of
# bench/machine.py); the JSON is also the last output line.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=$REPO/.venv/bin/python
PA=$REPO/.venv/bin/perf_analyzer
ROOTFS=${AFRNN_PERF_ANALYZER_ROOTFS:-$HOME/.cache/afrnn/perf-analyzer-rootfs}
SUITE=trixie
MIRROR=http://deb.debian.org/debian
PACKAGES=libc-bin,libstdc++6,zlib1g,libssl3t64,libgcc-s1
OUT=$REPO/docs/performance-data
RANGE=1:64:9
INTERVAL_MS=2000
STABILITY=50
MAX_TRIALS=20
QUICK=false
COMMAND="bench/perf_analyzer.sh${*:+ $*}"

while [ $# -gt 0 ]; do
  case $1 in
    --quick) QUICK=true; RANGE=1:64:63; INTERVAL_MS=1000 ;;
    --out) OUT=$2; shift ;;
    --range) RANGE=$2; shift ;;
    --interval-ms) INTERVAL_MS=$2; shift ;;
    --stability) STABILITY=$2; shift ;;
    --max-trials) MAX_TRIALS=$2; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { print }' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ ! -x "$PA" ]; then
  echo "$PA is missing: install tritonclient (pip install 'tritonclient[http]==2.60.0')" >&2
  exit 2
fi
[ "$(id -u)" = 0 ] || { echo "chroot and mount need root" >&2; exit 2; }

# 1. The root filesystem (once).
if [ ! -f "$ROOTFS/.complete" ]; then
  if ! command -v mmdebstrap >/dev/null; then
    apt-get install -y mmdebstrap
  fi
  rm -rf "$ROOTFS.partial"
  mkdir -p "$(dirname "$ROOTFS")"
  mmdebstrap --variant=essential --include="$PACKAGES" "$SUITE" "$ROOTFS.partial" "$MIRROR"
  touch "$ROOTFS.partial/.complete"
  rm -rf "$ROOTFS"
  mv "$ROOTFS.partial" "$ROOTFS"
fi
if ! cmp -s "$PA" "$ROOTFS/usr/local/bin/perf_analyzer"; then
  install -D -m 755 "$PA" "$ROOTFS/usr/local/bin/perf_analyzer"
fi
LIBRARIES=$(chroot "$ROOTFS" ldd /usr/local/bin/perf_analyzer)
if [[ $LIBRARIES == *"not found"* ]]; then
  echo "$LIBRARIES" >&2
  echo "a shared library of perf_analyzer is missing from $ROOTFS: add its package to PACKAGES and" \
       "delete $ROOTFS to rebuild" >&2
  exit 1
fi
HOST_ERROR=$(cd "$REPO" && .venv/bin/perf_analyzer --version 2>&1 | sed -n 1p || true)
ROOTFS_GLIBC=$(chroot "$ROOTFS" ldd --version | sed -n 1p)
PA_VERSION=$(chroot "$ROOTFS" /usr/local/bin/perf_analyzer --version 2>&1 | sed -n 1p)

# 2. The service.
WORK=$(mktemp -d /tmp/perf-analyzer-XXXXXX)
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
mkdir "$WORK/serve"
ln -s "$REPO/checkpoints/mnist.json" "$REPO/checkpoints/mnist.pt" "$WORK/serve/"
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(cd "$REPO" && env -u AFRNN_API_KEY OMP_NUM_THREADS=1 "$PY" -m service --model-dir "$WORK/serve" \
   --port "$PORT" --max-queue-length 1024 --log-level warning >"$WORK/service.log" 2>&1) &
SERVER_PID=$!
for _ in $(seq 600); do
  if "$PY" -c "import httpx, sys; sys.exit(httpx.get('http://127.0.0.1:$PORT/health/ready').status_code != 200)" \
       2>/dev/null; then
    break
  fi
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/service.log" >&2; exit 1; }
  sleep 0.3
done
metrics() { "$PY" -c "import httpx; print(httpx.get('http://127.0.0.1:$PORT/metrics').text)"; }
metrics >"$WORK/metrics.before"

# 3. perf_analyzer in the root filesystem.
CSV=/tmp/perf_analyzer-$PORT.csv
echo "perf_analyzer ($PA_VERSION) in $ROOTFS ($ROOTFS_GLIBC) against 127.0.0.1:$PORT; range $RANGE," \
     "windows of $INTERVAL_MS ms, stability $STABILITY %"
unshare --mount --propagation private sh -c \
  "mount -t proc proc '$ROOTFS/proc' && exec chroot '$ROOTFS' /usr/local/bin/perf_analyzer -m mnist \
   -u 127.0.0.1:$PORT -i http --concurrency-range $RANGE --measurement-interval $INTERVAL_MS \
   -s $STABILITY --max-trials $MAX_TRIALS -f $CSV" | tee "$WORK/perf_analyzer.log"
metrics >"$WORK/metrics.after"
mkdir -p "$OUT"
cp "$ROOTFS$CSV" "$OUT/perf_analyzer.csv"
rm -f "$ROOTFS$CSV"

# 4. The figures.
cd "$REPO"
"$PY" - "$OUT" "$WORK" "$COMMAND" "$QUICK" "$RANGE" "$INTERVAL_MS" "$STABILITY" "$MAX_TRIALS" "$PA_VERSION" \
  "$ROOTFS_GLIBC" "$HOST_ERROR" <<'EOF'
import csv, json, sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, "bench")
import machine

out, work, command, quick, span, interval, stability, trials, version, glibc, host_error = sys.argv[1:]


def answers(path):
    counts = {}
    for family in text_string_to_metric_families(Path(path).read_text()):
        for s in family.samples:
            if s.name == "afrnn_http_requests_total":
                key = f"{s.labels['method']} {s.labels['route']} {s.labels['status']}"
                counts[key] = counts.get(key, 0) + s.value
    return counts


before, after = answers(f"{work}/metrics.before"), answers(f"{work}/metrics.after")
during = {k: int(v - before.get(k, 0)) for k, v in after.items() if v > before.get(k, 0)}
rows = []
with open(f"{out}/perf_analyzer.csv") as f:
    for r in csv.DictReader(f):
        rows.append({"concurrency": int(r["Concurrency"]),
                     "infer_per_s": round(float(r["Inferences/Second"]), 1),
                     **{f"p{p}_ms": round(int(r[f"p{p} latency"]) / 1000, 2) for p in (50, 90, 95, 99)},
                     "client_send_us": int(r["Client Send"]), "client_recv_us": int(r["Client Recv"])})
record = machine.describe()
record["command"] = command
rows.sort(key=lambda r: r["concurrency"])           # perf_analyzer's CSV is in order of throughput
start, end, step = (int(x) for x in span.split(":"))
expected = list(range(start, end + 1, step))
figures = {"rows": rows, "concurrencies": [r["concurrency"] for r in rows],
           "expected_concurrencies": expected,
           "complete": [r["concurrency"] for r in rows] == expected,
           "max_infer_per_s": max(r["infer_per_s"] for r in rows),
           "answers_during_run": during,
           "non_200_answers": sum(v for k, v in during.items() if not k.endswith(" 200")),
           "perf_analyzer": version, "rootfs_glibc": glibc, "host_error": host_error,
           "concurrency_range": span, "measurement_interval_ms": int(interval),
           "stability_percentage": int(stability), "max_trials": int(trials), "quick": quick == "true",
           "machine": record}
Path(f"{out}/perf_analyzer.json").write_text(json.dumps(figures, indent=1) + "\n")
print(json.dumps(figures))
if not figures["complete"] or figures["non_200_answers"]:
    sys.exit("perf_analyzer did not measure every concurrency of the range, or the server answered non-200")
EOF
