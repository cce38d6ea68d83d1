#!/usr/bin/env bash
# bench/zoo-vs-torchvision.sh [ROUNDS] [MODEL...]: one worker's training step of each zoo model
# against the same model in PyTorch (bench/torchvision_step.py: torchvision's ImageNet models, the
# seed models written out as the zoo builds them), same batch, threads (2) and optimizer (SGD with
# momentum 0.9), alternating Lockstep and PyTorch ROUNDS (3) times so both see the same noise.
# Prints one table: median images/s of each, their ratio, the parameter counts of both (they must
# agree) and the engine that computed Lockstep's step. MODEL: the ImageNet models at batch
# IMAGENET_BATCH (8, 4 steps after 2) and the seed models at SEED_BATCH (64; 200 steps after 50,
# resnet18-cifar 10 after 3) by default. PyTorch is Debian's
# /usr/bin/python3 (apt-get install python3-torch python3-torchvision) with OpenBLAS first on
# LD_LIBRARY_PATH, as ../shared/bench/pytorch/run_baselines.sh sets it up.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${1:-3}
shift || true
# shellcheck source=zoo-models.sh
. "$ROOT/bench/zoo-models.sh"
if [ $# -gt 0 ]; then MODELS=("$@"); else MODELS=("${IMAGENET[@]}" "${SEEDS[@]}"); fi
# shellcheck source=pytorch-env.sh
. "$ROOT/bench/pytorch-env.sh"
require_torchvision
OUT=${OUT:-$ROOT/runs/zoo-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
"$ROOT/bin/lockstep" --help >/dev/null # builds once, outside the timings

for round in $(seq 1 "$ROUNDS"); do
  for model in "${MODELS[@]}"; do
    zoo_steps "$model"
    "$ROOT/bin/lockstep" bench step --model "$model" --batch-size "$batch" --steps "$steps" \
      --warmup "$warmup" 2>/dev/null | grep '^model=' >>"$OUT/$model.lockstep"
    py "$ROOT/bench/torchvision_step.py" "$model" \
      --batch-size "$batch" --steps "$steps" --warmup "$warmup" 2>/dev/null \
      | grep '^model=' >>"$OUT/$model.pytorch"
  done
done

python3 - "$OUT" "${MODELS[@]}" <<'PY'
import statistics, sys
out, models = sys.argv[1], sys.argv[2:]
def runs(path):
    rows = []
    for line in open(path):
        rows.append(dict(kv.split('=', 1) for kv in line.split() if '=' in kv))
    return rows
print('| model | batch | Lockstep img/s | PyTorch img/s | ratio | engine | parameters (Lockstep / PyTorch) |')
print('| --- | --- | --- | --- | --- | --- | --- |')
for m in models:
    ours, theirs = runs(f'{out}/{m}.lockstep'), runs(f'{out}/{m}.pytorch')
    a = statistics.median(float(r['images_per_second']) for r in ours)
    b = statistics.median(float(r['images_per_second']) for r in theirs)
    p, q = ours[0]['parameters'], theirs[0]['parameters']
    print(f"| {m} | {ours[0]['batch_size']} | {a:.1f} | {b:.1f} | {a / b:.2f} | {ours[0]['engine']} "
          f"| {int(p):,} / {int(q):,}{'' if p == q else ' (differ)'} |")
PY
echo "(medians of $ROUNDS alternating rounds; raw lines in $OUT)"
