#!/bin/bash
# The stability report's time, session 13's code (A: /tmp/base = git worktree add /tmp/base 8b73572) against
# this checkout (B: the model's B and B̃ fixed at load), on the same CIFAR-10 architecture (2 x 128, IMEX, 1024
# steps, test image 0), alternating A B A B; one training run on the other core.
#   bash results/bench-s14/stability_ab.sh /tmp/base
set -u
cd "$(dirname "$0")/../.." && . .venv/bin/activate
BASE=$1
DATA=$(pwd)/../shared/data
for round in 1 2; do
  for label in A B; do
    root=$([ $label = A ] && echo "$BASE" || pwd)
    (cd "$root" && OMP_NUM_THREADS=1 PYTHONPATH="$root" python -m training.stability_cli \
        --checkpoint checkpoints/cifar10.json --sample-index 0 --data-dir "$DATA" --out /tmp/stab-$label.json \
        > /dev/null 2>&1)
    python - "$label" "$round" <<'PY'
import json, sys
label, round_ = sys.argv[1:]
t = json.load(open(f"/tmp/stab-{label}.json"))["timings_s"]
print(f"{label} round {round_}: report {t['total']:.2f} s,", {k: round(v, 2) for k, v in t.items() if k != "total"})
PY
  done
done
