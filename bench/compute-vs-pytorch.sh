#!/usr/bin/env bash
# bench/compute-vs-pytorch.sh [ROUNDS] [WHAT...]: one worker's training step against PyTorch on this
# machine, alternating Lockstep and PyTorch ROUNDS (3) times so both see the same noise, then the
# medians and their ratio. WHAT is any of:
#   lenet   bin/lockstep bench step --model lenet --batch-size 128   vs  fmnist_ddp.py --world 0
#   resnet  bin/lockstep bench step --model resnet18-cifar --batch-size 64  vs  cifar_resnet_bench.py
#   train   bin/lockstep train (2 workers, STEPS=300 steps)  vs  fmnist_ddp.py --world 2 (same steps)
# (default: all three). PyTorch is Debian's /usr/bin/python3 with OpenBLAS first on LD_LIBRARY_PATH,
# as ../shared/bench/pytorch/run_baselines.sh sets it up; PYBENCH= the folder of those scripts.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${1:-3}
shift || true
WHAT=("${@:-lenet resnet train}")
read -r -a WHAT <<<"${WHAT[*]}"
PYBENCH=${PYBENCH:-$ROOT/../shared/bench/pytorch}
STEPS=${STEPS:-300}
# shellcheck source=pytorch-env.sh
. "$ROOT/bench/pytorch-env.sh"
OUT=${OUT:-$ROOT/runs/compute-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
"$ROOT/bin/lockstep" --help >/dev/null # builds once, outside the timings

for round in $(seq 1 "$ROUNDS"); do
  for what in "${WHAT[@]}"; do
    case $what in
      lenet)
        "$ROOT/bin/lockstep" bench step --model lenet --batch-size 128 --steps 60 --warmup 10 \
          2>/dev/null | grep -o 'images_per_second=[0-9.]*' | cut -d= -f2 >>"$OUT/lenet.lockstep"
        py "$PYBENCH/fmnist_ddp.py" --world 0 --max-steps 80 --no-eval 2>/dev/null \
          | grep -o 'steady_img/s [0-9.]*' | awk '{print $2}' >>"$OUT/lenet.pytorch" ;;
      resnet)
        "$ROOT/bin/lockstep" bench step --model resnet18-cifar --batch-size 64 --steps 10 \
          --warmup 3 2>/dev/null | grep -o 'images_per_second=[0-9.]*' | cut -d= -f2 \
          >>"$OUT/resnet.lockstep"
        py "$PYBENCH/cifar_resnet_bench.py" 2>/dev/null | grep -o 'images/s best [0-9.]*  median [0-9.]*' \
          | awk '{print $NF}' >>"$OUT/resnet.pytorch" ;;
      train)
        run="$OUT/train-$round"
        "$ROOT/bin/lockstep" train --workers 2 --max-steps "$STEPS" --run-dir "$run" >"$run.log" 2>&1
        python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['images_per_second'])" \
          "$run/summary.json" >>"$OUT/train.lockstep"
        py "$PYBENCH/fmnist_ddp.py" --world 2 --max-steps "$STEPS" --no-eval 2>/dev/null \
          | grep -o 'img/s [0-9.]*' | head -1 | awk '{print $2}' >>"$OUT/train.pytorch" ;;
      *) echo "unknown: $what (lenet, resnet or train)" >&2; exit 2 ;;
    esac
  done
done
python3 - "$OUT" "${WHAT[@]}" <<'PY'
import statistics, sys
out, whats = sys.argv[1], sys.argv[2:]
for what in whats:
    ours = [float(x) for x in open(f"{out}/{what}.lockstep").read().split()]
    theirs = [float(x) for x in open(f"{out}/{what}.pytorch").read().split()]
    print(f"{what}: lockstep images/s {ours}  pytorch {theirs}")
    m, p = statistics.median(ours), statistics.median(theirs)
    print(f"{what}: median lockstep {m:.1f}  pytorch {p:.1f}  ratio {m / p:.2f}")
PY
