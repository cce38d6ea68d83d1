#!/usr/bin/env bash
# bench/bf16-vs-fp32.sh [ROUNDS] [MODEL...]: one worker's training step in bfloat16
# (`bin/lockstep bench step --precision bf16`: convolutions and dense layers in bfloat16 with
# float32 accumulation) against float32, and the same model in PyTorch in float32 and under
# torch.autocast("cpu", dtype=torch.bfloat16) (bench/torchvision_step.py), same batch, threads (2)
# and optimizer, the four alternating ROUNDS (3) times so they see the same noise. Prints one table
# of median images/s and their ratios. MODEL: lenet simple-cnn resnet18-cifar resnet-mini resnet18
# mobilenet_v2 by default, timed as bench/zoo-models.sh says. Refused by Lockstep where the CPU has
# no AVX512_BF16 or AMX. PyTorch as in bench/zoo-vs-torchvision.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${1:-3}
shift || true
# shellcheck source=zoo-models.sh
. "$ROOT/bench/zoo-models.sh"
if [ $# -gt 0 ]; then MODELS=("$@"); else
  MODELS=(lenet simple-cnn resnet18-cifar resnet-mini resnet18 mobilenet_v2)
fi
# shellcheck source=pytorch-env.sh
. "$ROOT/bench/pytorch-env.sh"
require_torchvision
OUT=${OUT:-$ROOT/runs/bf16-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
"$ROOT/bin/lockstep" --help >/dev/null # builds once, outside the timings

for round in $(seq 1 "$ROUNDS"); do
  for model in "${MODELS[@]}"; do
    zoo_steps "$model"
    for precision in fp32 bf16; do
      "$ROOT/bin/lockstep" bench step --model "$model" --batch-size "$batch" --steps "$steps" \
        --warmup "$warmup" --precision "$precision" | grep '^model=' \
        >>"$OUT/$model.lockstep-$precision"
      # PyTorch 1.13's autocast has no bfloat16 backward for some layers (MobileNet v2's ReLU6):
      # the table says so
      { py "$ROOT/bench/torchvision_step.py" "$model" --batch-size "$batch" --steps "$steps" \
        --warmup "$warmup" --precision "$precision" 2>/dev/null || true; } | grep '^model=' \
        >>"$OUT/$model.pytorch-$precision" || true
    done
  done
done

python3 - "$OUT" "${MODELS[@]}" <<'PY'
import statistics, sys
out, models = sys.argv[1], sys.argv[2:]
def median(path):
    rows = [dict(kv.split('=', 1) for kv in line.split() if '=' in kv) for line in open(path)]
    if not rows:
        return None, None
    return statistics.median(float(r['images_per_second']) for r in rows), rows[0]
def cell(x):
    return 'fails' if x is None else f'{x:.1f}'
def ratio(x, y):
    return '-' if x is None or y is None else f'{x / y:.2f}'
print('| model | batch | Lockstep fp32 | Lockstep bf16 | bf16 / fp32 | PyTorch fp32 '
      '| PyTorch autocast | autocast / fp32 | Lockstep bf16 / PyTorch autocast |')
print('| --- | --- | --- | --- | --- | --- | --- | --- | --- |')
for m in models:
    (a, row), (b, _) = median(f'{out}/{m}.lockstep-fp32'), median(f'{out}/{m}.lockstep-bf16')
    (c, _), (d, _) = median(f'{out}/{m}.pytorch-fp32'), median(f'{out}/{m}.pytorch-bf16')
    print(f"| {m} | {row['batch_size']} | {cell(a)} | {cell(b)} | {ratio(b, a)} | {cell(c)} "
          f"| {cell(d)} | {ratio(d, c)} | {ratio(b, d)} |")
PY
echo "(images/s, medians of $ROUNDS alternating rounds; raw lines in $OUT)"
