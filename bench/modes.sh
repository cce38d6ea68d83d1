#!/usr/bin/env bash
# bench/modes.sh [EPOCHS] [MODE...]: trains fashion-mnist-lenet with 2 workers for EPOCHS (3) epochs
# once per synchronization mode and compression (all of them unless named), one after another, and
# prints each run's test accuracy, its difference from sync in percentage points, and images/s.
# Runs go to $OUT (runs/modes-TIME); $EXTRA is added to every run's flags (EXTRA="--max-steps 300").
# The goal is a difference of at most 1 pp after 3 epochs (about 10 min per mode on 2 cores).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EPOCHS=${1:-3}
shift || true
OUT=${OUT:-$ROOT/runs/modes-$(date +%Y%m%d-%H%M%S)}
declare -A FLAGS=(
  [sync]=""
  [async]="--set lockstep.ps.mode=async"
  [stale-sync]="--set lockstep.ps.mode=stale-sync --set lockstep.ps.staleness=2"
  [local-sgd]="--set lockstep.ps.mode=local-sgd --set lockstep.ps.local-steps=4"
  [fp16]="--set lockstep.ps.compression=fp16"
  [bf16]="--set lockstep.ps.compression=bf16"
  [top-k]="--set lockstep.ps.compression=top-k --set lockstep.ps.top-k-ratio=0.01"
  [threshold]="--set lockstep.ps.compression=threshold --set lockstep.ps.threshold=0.001"
)
ORDER=(sync async stale-sync local-sgd fp16 bf16 top-k threshold)
[ $# -gt 0 ] && ORDER=("$@")
for name in "${ORDER[@]}"; do
  [ -n "${FLAGS[$name]+set}" ] || { echo "bench/modes.sh: unknown mode $name; one of ${!FLAGS[*]}" >&2; exit 2; }
done
mkdir -p "$OUT"
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }
for name in "${ORDER[@]}"; do
  # shellcheck disable=SC2086
  "$ROOT/bin/lockstep" train --epochs "$EPOCHS" --run-dir "$OUT/$name" ${EXTRA:-} ${FLAGS[$name]} \
    >"$OUT/$name.log" 2>&1 || { echo "$name: failed, see $OUT/$name.log" >&2; exit 1; }
  echo "$name $(field "$OUT/$name/summary.json" test_accuracy) $(field "$OUT/$name/summary.json" images_per_second)" \
    >>"$OUT/results.txt"
  echo "$name done: $(tail -1 "$OUT/results.txt")" >&2
done
python3 - "$OUT/results.txt" <<'PY'
import sys
rows = [line.split() for line in open(sys.argv[1])]
base = {r[0]: float(r[1]) for r in rows}.get("sync")
print(f"{'mode':<12}{'test_accuracy':>14}{'vs sync (pp)':>14}{'images/s':>10}")
for name, acc, ips in rows:
    diff = "" if base is None else f"{(float(acc) - base) * 100:+.2f}"
    print(f"{name:<12}{float(acc):>14.4f}{diff:>14}{float(ips):>10.0f}")
PY
