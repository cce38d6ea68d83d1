#!/usr/bin/env bash
# bench/exactness.sh [WORKERS] [STEPS...]: how exactly N workers train as one process, from the
# command line, for momentum and Adam (fashion-mnist-lenet, batch 120, seed 7, one thread per slice;
# LR_MOMENTUM=0.01, LR_ADAM=0.001). For each optimizer and each step count (1 10 30) it trains
#   N workers; 1 worker accumulating micro-batches of 120/N; 1 worker on the whole batch; and the
#   same with 2 threads (the noise floor: one equally valid change of rounding)
# and prints whether N workers equal the accumulating worker bit for bit, their distance to the
# whole batch (max |a - b| / max |b|) and the noise floor beside it. Runs go to $OUT.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORKERS=${1:-3}
shift || true
STEPS=("${@:-1 10 30}")
read -r -a STEPS <<<"${STEPS[*]}"
OUT=${OUT:-$ROOT/runs/exactness-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
micro=$(( (120 + WORKERS - 1) / WORKERS ))
train() { # NAME STEPS OPTIMIZER LR FLAGS...
  local name=$1 steps=$2 optimizer=$3 lr=$4
  shift 4
  "$ROOT/bin/lockstep" train --batch-size 120 --seed 7 --max-steps "$steps" --optimizer "$optimizer" \
    --learning-rate "$lr" --set lockstep.worker.threads=1 --run-dir "$OUT/$name" "$@" \
    >"$OUT/$name.log" 2>&1 || { echo "$name: failed, see $OUT/$name.log" >&2; exit 1; }
}
compare() { "$ROOT/bin/lockstep" compare "$@" 2>/dev/null; }
printf '%-9s %5s %16s %14s %12s %8s\n' optimizer steps "bit-identical" "vs whole batch" "noise floor" ratio
for optimizer in momentum adam; do
  lr=$([ "$optimizer" = momentum ] && echo "${LR_MOMENTUM:-0.01}" || echo "${LR_ADAM:-0.001}")
  for steps in "${STEPS[@]}"; do
    tag=$optimizer-$steps
    train "$tag-n" "$steps" "$optimizer" "$lr" --workers "$WORKERS"
    train "$tag-micro" "$steps" "$optimizer" "$lr" --workers 1 --set "lockstep.train.micro-batch=$micro"
    train "$tag-whole" "$steps" "$optimizer" "$lr" --workers 1
    train "$tag-floor" "$steps" "$optimizer" "$lr" --workers 1 --set lockstep.worker.threads=2
    identical=$(compare "$OUT/$tag-n" "$OUT/$tag-micro" | sed -n 's/.*bit-identical: //p' | head -1)
    against=$(compare "$OUT/$tag-n" "$OUT/$tag-whole" --floor "$OUT/$tag-floor")
    distance=$(sed -n 's/^max |a - b| \/ max |b|: //p' <<<"$against")
    floor=$(sed -n 's/^noise floor (max |c - b| \/ max |b|): \([^,]*\),.*/\1/p' <<<"$against")
    ratio=$(sed -n 's/^distance \/ noise floor: //p' <<<"$against")
    printf '%-9s %5s %16s %14s %12s %8s\n' "$optimizer" "$steps" "$identical" "$distance" "$floor" "$ratio" \
      | tee -a "$OUT/results.txt"
  done
done
