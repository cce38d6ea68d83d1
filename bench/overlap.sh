#!/usr/bin/env bash
# bench/overlap.sh [ROUNDS] [STEPS]: trains fashion-mnist-lenet with 2 workers for STEPS (150) steps,
# alternately with lockstep.ps.overlap=true and false, ROUNDS (3) times each, and prints per run and
# as medians the training images/s and each worker's mean seconds in compute and sync
# (summary.json phase_seconds; with overlap, compute includes the chunks sent during the backward
# pass). Runs go to $OUT (runs/overlap-TIME); $EXTRA is added to every run's flags.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${1:-3}
STEPS=${2:-150}
OUT=${OUT:-$ROOT/runs/overlap-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
for round in $(seq 1 "$ROUNDS"); do
  for overlap in true false; do
    run="$OUT/$overlap-$round"
    # shellcheck disable=SC2086
    "$ROOT/bin/lockstep" train --max-steps "$STEPS" --run-dir "$run" ${EXTRA:-} \
      --set lockstep.ps.overlap=$overlap >"$run.log" 2>&1 \
      || { echo "overlap=$overlap round $round: failed, see $run.log" >&2; exit 1; }
  done
done
python3 - "$OUT" "$ROUNDS" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
rows = {}
for overlap in ("true", "false"):
    for r in range(1, rounds + 1):
        s = json.load(open(f"{out}/{overlap}-{r}/summary.json"))
        p = s["phase_seconds"]
        row = (s["images_per_second"], p["compute"], p["sync"], s["overlap"])
        rows.setdefault(overlap, []).append(row)
        print(f"overlap={overlap} round={r} images_per_second={row[0]:.1f} "
              f"compute_s={row[1]:.2f} sync_s={row[2]:.2f} summary_overlap={row[3]}")
med = {k: [statistics.median(x[i] for x in v) for i in range(3)] for k, v in rows.items()}
for k in ("true", "false"):
    print(f"median overlap={k} images_per_second={med[k][0]:.1f} compute_s={med[k][1]:.2f} "
          f"sync_s={med[k][2]:.2f}")
print(f"ratio images_per_second true/false = {med['true'][0] / med['false'][0]:.3f}")
PY
