#!/usr/bin/env bash
# bench/soak.sh [EPOCHS] [TRAIN FLAGS...]: trains fashion-mnist-lenet (2 workers) for EPOCHS (30)
# epochs and shows whether the processes stay flat: every $INTERVAL (5) s it samples each JVM's
# resident memory, threads and open files from /proc (the driver, and the executors on a cluster),
# and after the run prints a table per epoch and process: the figures each process reported at the
# epoch's end (metrics.jsonl "resources": resident memory, Java heap after GC, threads, open files),
# the sampled peak of resident memory in the epoch, and the growth from epoch $FROM (5) to the last;
# then each process's resident memory split into anonymous, file-backed and shared memory (Aeron's
# terms) at both ends, and which of the driver's mappings grew between them (from /proc/PID/smaps).
#   MODE=local (default): Spark local mode, the workers in the driver's JVM
#   MODE=standalone: a 2-worker standalone cluster (bin/lockstep cluster start), the workers in two
#                    executor JVMs, stopped afterwards
# Extra flags go to `train`, e.g. --set lockstep.checkpoint.every-steps=50. The run, the samples and
# the table go to $OUT (runs/soak-TIME).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EPOCHS=${1:-30}
shift || true
MODE=${MODE:-local}
INTERVAL=${INTERVAL:-5}
FROM=${FROM:-5}
OUT=${OUT:-$ROOT/runs/soak-$(date +%Y%m%d-%H%M%S)}
case "$MODE" in
  local | standalone) ;;
  *) echo "bench/soak.sh: MODE=$MODE; use local or standalone" >&2; exit 2 ;;
esac
[[ "$EPOCHS" =~ ^[0-9]+$ ]] && [ "$EPOCHS" -gt "$FROM" ] \
  || { echo "bench/soak.sh: EPOCHS=$EPOCHS; give a number of epochs above FROM=$FROM" >&2; exit 2; }
mkdir -p "$OUT"
RUN="$OUT/run"
SAMPLES="$OUT/samples.tsv"
cluster_started=false
trainer=""
cleanup() {
  [ -n "$trainer" ] && kill "$trainer" 2>/dev/null || true
  if $cluster_started; then "$ROOT/bin/lockstep" cluster stop >>"$OUT/cluster.log" 2>&1 || true; fi
}
trap cleanup EXIT

if [ "$MODE" = standalone ]; then
  master=$("$ROOT/bin/lockstep" cluster start --workers 2 --cores 1 2>>"$OUT/cluster.log" | tail -1)
  cluster_started=true
  [[ "$master" == spark://* ]] || { echo "bench/soak.sh: cluster start printed '$master'; see $OUT/cluster.log" >&2; exit 1; }
  "$ROOT/bin/lockstep" submit --master "$master" --epochs "$EPOCHS" --run-dir "$RUN" "$@" >"$OUT/train.log" 2>&1 &
else
  "$ROOT/bin/lockstep" train --epochs "$EPOCHS" --run-dir "$RUN" "$@" >"$OUT/train.log" 2>&1 &
fi
trainer=$!

# the driver: the JVM running the command line (local) or spark-submit's (standalone) for this run
pattern="io.lockstep.jobs.Lockstep .*--run-dir $RUN"
[ "$MODE" = standalone ] && pattern="org.apache.spark.deploy.SparkSubmit .*--run-dir $RUN"
driver=""
for _ in $(seq 1 600); do
  driver=$(pgrep -f "$pattern" | head -1 || true)
  [ -n "$driver" ] && break
  kill -0 "$trainer" 2>/dev/null || break
  sleep 0.5
done
[ -n "$driver" ] || { echo "bench/soak.sh: the driver did not start; see $OUT/train.log" >&2; exit 1; }

echo -e "seconds\tepochs_done\tprocess\tpid\tresident_mb\tanon_mb\tfile_mb\tshmem_mb\tthreads\topen_files" >"$SAMPLES"
start=$(date +%s)
sample() { # ROLE PID
  local status="/proc/$2/status"
  [ -r "$status" ] || return 0
  # resident memory and its parts: anonymous (heaps, malloc, JIT), file-backed (jars, libraries),
  # shared memory (Aeron's terms in /dev/shm)
  local rss anon file shmem threads fds
  read -r rss anon file shmem threads < <(awk '/^VmRSS/{r=int($2/1024)} /^RssAnon/{a=int($2/1024)}
    /^RssFile/{f=int($2/1024)} /^RssShmem/{s=int($2/1024)} /^Threads/{t=$2}
    END{print r, a, f, s, t}' "$status" 2>/dev/null) || return 0
  [ -n "$threads" ] || return 0
  fds=$(ls "/proc/$2/fd" 2>/dev/null | wc -l)
  local done=0
  [ -f "$RUN/metrics.jsonl" ] && done=$(grep -c '"type":"epoch"' "$RUN/metrics.jsonl" || true)
  echo -e "$(($(date +%s) - start))\t$done\t$1\t$2\t$rss\t$anon\t$file\t$shmem\t$threads\t$fds" >>"$SAMPLES"
  # the driver's mappings as epoch FROM ends and as each later epoch but the last ends (after the
  # last the run closes its servers), for where it grew (read once an epoch: reading smaps walks
  # every page table of the process)
  if [ "$1" = driver ] && [ "$done" != "$smaps_done" ] && [ "$done" -ge "$FROM" ] \
    && [ "$done" -lt "$EPOCHS" ]; then
    smaps_done=$done
    if [ ! -f "$OUT/smaps-from" ]; then
      cp "/proc/$2/smaps" "$OUT/smaps-from" 2>/dev/null || true
    else
      cp "/proc/$2/smaps" "$OUT/smaps-last.tmp" 2>/dev/null && mv "$OUT/smaps-last.tmp" "$OUT/smaps-last"
    fi
  fi
}
smaps_done=
while kill -0 "$trainer" 2>/dev/null; do
  sample driver "$driver"
  if [ "$MODE" = standalone ]; then
    for pid in $(pgrep -f CoarseGrainedExecutorBackend || true); do
      sample "executor-pid-$pid" "$pid"
    done
  fi
  sleep "$INTERVAL"
done
status=0
wait "$trainer" || status=$?
trainer=""
[ "$status" = 0 ] || { echo "bench/soak.sh: training failed ($status); see $OUT/train.log" >&2; exit 1; }

python3 - "$RUN/metrics.jsonl" "$SAMPLES" "$FROM" "$EPOCHS" <<'PY' | tee "$OUT/table.txt"
import collections, csv, json, sys
metrics, samples, first, epochs_run = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
epochs = [json.loads(l) for l in open(metrics) if '"type":"epoch"' in l]
peak = collections.defaultdict(int)  # (epoch, pid) -> sampled peak MB while the epoch ran
for row in csv.DictReader(open(samples), delimiter="\t"):
    key = (int(row["epochs_done"]) + 1, int(row["pid"]))
    peak[key] = max(peak[key], int(row["resident_mb"]))
mb = lambda b: b / 2**20
print(f"{'epoch':>5}  {'process':<12} {'pid':>7} {'resident_mb':>11} {'peak_mb':>8} "
      f"{'heap_after_gc_mb':>16} {'threads':>7} {'open_files':>10}")
series = collections.defaultdict(dict)
for e in epochs:
    for r in e["resources"]:
        name = r["process"]
        series[name][e["epoch"]] = r
        p = peak.get((e["epoch"], r["pid"]), 0)
        print(f"{e['epoch']:>5}  {name:<12} {r['pid']:>7} {mb(r['resident_bytes']):>11.0f} "
              f"{p if p else '-':>8} {mb(r['heap_after_gc_bytes']):>16.0f} {r['threads']:>7} "
              f"{r['open_files']:>10}")
last = max(e["epoch"] for e in epochs)
print()
for name, by_epoch in series.items():
    if first not in by_epoch or last not in by_epoch:
        print(f"{name}: no figures for epochs {first} and {last}")
        continue
    a, b = by_epoch[first], by_epoch[last]
    growth = 100 * (b["resident_bytes"] - a["resident_bytes"]) / a["resident_bytes"]
    high = max(r["resident_bytes"] for ep, r in by_epoch.items() if ep >= first)
    print(f"{name}: resident {mb(a['resident_bytes']):.0f} MB at epoch {first} -> "
          f"{mb(b['resident_bytes']):.0f} MB at epoch {last} ({growth:+.1f}%; highest "
          f"{mb(high):.0f} MB), heap after GC {mb(a['heap_after_gc_bytes']):.0f} -> "
          f"{mb(b['heap_after_gc_bytes']):.0f} MB, threads {a['threads']} -> {b['threads']}, "
          f"open files {a['open_files']} -> {b['open_files']}")
# pid -> epochs done -> the first sample after them, while the run still trains (after the last
# epoch it closes its servers)
at = collections.defaultdict(dict)
for row in csv.DictReader(open(samples), delimiter="\t"):
    if int(row["epochs_done"]) < epochs_run:
        at[int(row["pid"])].setdefault(int(row["epochs_done"]), row)
for pid, by_done in at.items():
    if first in by_done and max(by_done) > first:
        a, b = by_done[first], by_done[max(by_done)]
        name = a["process"]
        print(f"{name} resident parts, end of epoch {first} -> of epoch {max(by_done)} (MB): " + ", ".join(
            f"{k[:-3]} {a[k]} -> {b[k]}" for k in ("anon_mb", "file_mb", "shmem_mb")))
PY
# where the driver's resident memory grew, by mapping (file, or anonymous by size class)
if [ -f "$OUT/smaps-from" ] && [ -f "$OUT/smaps-last" ]; then
python3 - "$OUT/smaps-from" "$OUT/smaps-last" "$FROM" <<'PY' | tee -a "$OUT/table.txt"
import collections, re, sys
def groups(path):
    out, name = collections.defaultdict(int), None
    for line in open(path):
        head = re.match(r"^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$", line)
        if head:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            name = head.group(1).strip() or f"[anon {'>=64MB' if hi - lo >= 64 << 20 else '<64MB'}]"
            name = re.sub(r"lockstep-[0-9a-f-]+", "lockstep-*", name)
        elif line.startswith("Rss:"):
            out[name] += int(line.split()[1])
    return out
a, b = groups(sys.argv[1]), groups(sys.argv[2])
print(f"\ndriver resident memory by mapping, end of epoch {sys.argv[3]} -> of the last but one"
      " (KB), largest changes:")
for name in sorted(set(a) | set(b), key=lambda n: -abs(b.get(n, 0) - a.get(n, 0)))[:10]:
    print(f"  {b.get(name, 0) - a.get(name, 0):+9d}  {a.get(name, 0):9d} -> {b.get(name, 0):9d}  {name}")
PY
fi
