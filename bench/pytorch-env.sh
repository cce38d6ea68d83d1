# Sourced by the bench scripts that run PyTorch: PYTHON (Debian's /usr/bin/python3, which has
# torch), py, which runs it with OpenBLAS first on LD_LIBRARY_PATH, unpacked once into OB_ROOT
# as ../shared/bench/pytorch/run_baselines.sh does (Debian's default libblas is the slow reference
# BLAS; the system is not changed), and require_torchvision for the scripts that need torchvision.
PYTHON=${PYTHON:-/usr/bin/python3}
OB_ROOT=${OB_ROOT:-${TMPDIR:-/tmp}/pytorch-baseline/openblas}
OB_DIR=$OB_ROOT/usr/lib/x86_64-linux-gnu/openblas-pthread
if [ ! -d "$OB_DIR" ]; then
  mkdir -p "$OB_ROOT/debs" && (cd "$OB_ROOT/debs" && apt-get download libopenblas0-pthread >/dev/null) \
    && dpkg -x "$OB_ROOT"/debs/libopenblas0-pthread_*.deb "$OB_ROOT"
fi
py() { LD_LIBRARY_PATH=$OB_DIR "$PYTHON" "$@"; }
# Stops the calling script, naming it and the packages, where PYTHON has no torch and torchvision.
require_torchvision() {
  "$PYTHON" -c 'import torch, torchvision' 2>/dev/null || {
    echo "$0: $PYTHON has no torch and torchvision;" \
      "apt-get install python3-torch python3-torchvision" >&2
    exit 2
  }
}
