#!/usr/bin/env bash
# The CUDA engine checked against PyTorch on a real GPU.
#
#   bench/gpu-check.sh bundle DIR   (here, after `mvn install`) builds DIR: a jlink'ed Java runtime
#                                   (.tar.xz), the engine's jars and JNA, and the PyTorch side;
#                                   prints its size. DIR travels to a GPU machine that has no Java.
#   bench/gpu-check.sh run DIR      (on the GPU machine) for LeNet and ResNet-18 CIFAR: the loss and
#                                   every parameter's gradient against PyTorch's with the same
#                                   weights and batch (TF32 off, 1e-3 relative), images/s of a full
#                                   step against PyTorch eager fp32; then two workers sharing the
#                                   GPU through the real parameter server, run twice: bit-identical.
#
# The GPU machine needs python3 with torch and numpy; the CUDA libraries (driver, cuBLAS, cuDNN 9,
# NVRTC) are found in a system CUDA or in PyTorch's nvidia-* wheels. Exit status: 0 when every
# check passed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODE=${1:-}
DIR=${2:-}
if [[ -z "$MODE" || -z "$DIR" ]]; then
  echo "usage: bench/gpu-check.sh bundle DIR | run DIR" >&2
  exit 2
fi

bundle() {
  local jar
  jar=$(ls "$ROOT"/cuda/target/lockstep-cuda-*.jar 2>/dev/null | grep -v -- '-sources\|-tests' | head -1 || true)
  if [[ -z "$jar" ]]; then
    echo "gpu-check: no cuda/target/lockstep-cuda-*.jar; run 'mvn -B install -DskipTests' first" >&2
    exit 1
  fi
  rm -rf "$DIR"
  mkdir -p "$DIR/lib"
  cp "$jar" "$DIR/lib/"
  (cd "$ROOT" && mvn -B -q -Dstyle.color=never dependency:copy-dependencies -pl cuda -DincludeScope=runtime \
    -DoutputDirectory="$DIR/lib") || {
    echo "gpu-check: could not copy the engine's dependencies into $DIR/lib" >&2
    exit 1
  }
  local java_home=${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")}
  local modules
  modules=$("$java_home/bin/jdeps" --print-module-deps --ignore-missing-deps --multi-release 17 \
    "$DIR"/lib/*.jar 2>/dev/null | tail -1)
  modules="$modules,jdk.unsupported,java.logging,java.management,jdk.management"
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  "$java_home/bin/jlink" --add-modules "$modules" --strip-debug --no-header-files --no-man-pages \
    --compress=2 --output "$scratch/jre"
  tar -C "$scratch" -cJf "$DIR/jre.tar.xz" jre
  cp "$ROOT/bench/gpu_check.py" "$ROOT/bench/gpu-check.sh" "$DIR/"
  echo "gpu-check: bundle $DIR: $(du -sh "$DIR" | cut -f1) (runtime $(du -sh "$DIR/jre.tar.xz" | cut -f1), modules $modules)"
}

cuda_folders() {
  # A system CUDA first, then PyTorch's nvidia-* wheels, then wherever torch's own libraries are.
  local folders="/usr/local/cuda/lib64"
  local wheels
  wheels=$(python3 - <<'PY' 2>/dev/null || true
import glob, os, site, sys
roots = site.getsitepackages() + [site.getusersitepackages()] + sys.path
seen = []
for root in roots:
    for lib in glob.glob(os.path.join(root, "nvidia", "**", "lib*.so*"), recursive=True):
        folder = os.path.dirname(lib)
        if folder not in seen:
            seen.append(folder)
print(":".join(seen))
PY
)
  [[ -n "$wheels" ]] && folders="$folders:$wheels"
  echo "$folders"
}

run() {
  local here java failed=0
  here=$(cd "$DIR" && pwd)
  jre=$(mktemp -d)
  work=$(mktemp -d)
  trap 'rm -rf "$jre" "$work"' EXIT
  tar -C "$jre" -xJf "$here/jre.tar.xz"
  export LOCKSTEP_CUDA_PATH
  LOCKSTEP_CUDA_PATH=$(cuda_folders)
  export LD_LIBRARY_PATH="$LOCKSTEP_CUDA_PATH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  java=("$jre/jre/bin/java" --add-exports=java.base/jdk.internal.misc=ALL-UNNAMED
    --add-opens=java.base/java.nio=ALL-UNNAMED --add-opens=java.base/sun.nio.ch=ALL-UNNAMED
    -Djna.tmpdir="$work" -cp "$here/lib/*"
    io.lockstep.cuda.check.GpuCheck)
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  echo "== libraries"
  "${java[@]}" libraries
  local spec network batch steps
  for spec in lenet:64:200 resnet18-cifar:128:20; do
    IFS=: read -r network batch steps <<<"$spec"
    echo "== $network: gradients and speed against PyTorch"
    if "${java[@]}" gradients "$network" "$batch" 7 "$work/$network" 5 "$steps"; then
      python3 "$here/gpu_check.py" "$work/$network" 5 "$steps" || failed=1
    else
      failed=1
    fi
  done
  for spec in lenet:64:30 resnet18-cifar:128:10; do
    IFS=: read -r network batch steps <<<"$spec"
    echo "== $network: two workers through the parameter server, run twice"
    local first second
    first=$("${java[@]}" workers "$network" 2 "$batch" "$steps" 7 | tee /dev/stderr | grep '^rank 0') || failed=1
    second=$("${java[@]}" workers "$network" 2 "$batch" "$steps" 7 | tee /dev/stderr | grep '^rank 0') || failed=1
    if [[ -n "$first" && "$first" == "$second" ]]; then
      echo "$network: two workers bit-identical on a rerun ($first)"
    else
      echo "$network: the reruns differ: '$first' vs '$second'"
      failed=1
    fi
  done
  if ((failed)); then
    echo "gpu-check: FAILED"
    return 1
  fi
  echo "gpu-check: passed"
}

case "$MODE" in
  bundle) bundle ;;
  run) run ;;
  *)
    echo "usage: bench/gpu-check.sh bundle DIR | run DIR" >&2
    exit 2
    ;;
esac
