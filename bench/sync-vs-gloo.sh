#!/usr/bin/env bash
# Times Lockstep's gradient synchronization against PyTorch gloo's all-reduce of the same 44.7 MB,
# alternating the two ROUNDS times on this machine (it is noisy), and prints each median and the
# ratio of the medians of medians. Usage: bench/sync-vs-gloo.sh [ROUNDS] [extra bench sync flags];
# gloo runs as many processes as --workers gives Lockstep's workers (2), on a vector as long as
# --params (11173962, ResNet-18's gradient).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${1:-3}
shift || true
GLOO=${GLOO:-"$ROOT/../shared/bench/pytorch/allreduce_bench.py"}
PYTHON=${PYTHON:-/usr/bin/python3}
[ -f "$GLOO" ] || { echo "sync-vs-gloo: $GLOO is missing" >&2; exit 2; }
"$PYTHON" -c 'import torch' 2>/dev/null || { echo "sync-vs-gloo: $PYTHON has no torch; set PYTHON" >&2; exit 2; }
workers=2; params=11173962
args=("$@")
for i in "${!args[@]}"; do
  case "${args[$i]}" in
    --workers) workers=${args[$((i + 1))]} ;;
    --workers=*) workers=${args[$i]#--workers=} ;;
    --params) params=${args[$((i + 1))]} ;;
    --params=*) params=${args[$i]#--params=} ;;
  esac
done
ours=(); theirs=()
for round in $(seq "$ROUNDS"); do
  line=$("$ROOT/bin/lockstep" bench sync "$@" 2>/dev/null | grep median_ms=)
  echo "$line"
  ours+=("$(sed -E 's/.*median_ms=([0-9.]+).*/\1/' <<<"$line")")
  gloo=$("$PYTHON" "$GLOO" --world "$workers" --numel "$params" | grep median)
  echo "$gloo"
  theirs+=("$(sed -E 's/.*median ([0-9.]+) ms.*/\1/' <<<"$gloo")")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
m_ours=$(median "${ours[@]}"); m_gloo=$(median "${theirs[@]}")
awk -v a="$m_ours" -v b="$m_gloo" -v n="$ROUNDS" \
  'BEGIN {printf "lockstep median_ms=%.3f gloo median_ms=%.3f ratio=%.3f (median of %d rounds; goal <= 0.7)\n", a, b, a / b, n}'
