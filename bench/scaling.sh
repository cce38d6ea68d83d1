#!/usr/bin/env bash
# bench/scaling.sh [RATE] [STEPS] [JOB] [ONLY] [SUBMIT FLAGS...]: docs/scaling.md's model against
# measurement on links where the wire is the bottleneck. Makes six hosts of network namespaces
# (198.18.0.10-15) with every link shaped to RATE (200mbit) each way: a Spark master and the driver
# on h0, a Spark worker on each of h1-h3, shard processes on h4 and h5. Runs JOB
# (fashion-mnist-lenet) for STEPS (60) steps with 2 and 3 workers, 1 and 2 shard hosts, compression
# none and fp16, overlap off and on, and prints a table of the median synchronization and step
# times against the model's. ONLY (all) keeps the configurations named in a comma-separated list
# (n2-s1-none: workers, shard hosts, compression; s0: the server in the driver JVM on h0); the
# flags after it go to every submit. JOB params=N times the synchronization of an N-float gradient
# alone instead (no Spark, no compute: a server process on h0, a worker process on each of h1-h3,
# STEPS iterations, medians after the second), so a gradient as large as a real model's is measured
# where the wire, not the shared cores, sets the time. Needs root; removes the hosts and every
# process it started when it ends.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "bench/scaling.sh: needs root (it makes network namespaces)" >&2; exit 2; }
cd "$ROOT"
# bin/lockstep builds and installs the project when its sources changed since the last build
"$ROOT/bin/lockstep" --version >/dev/null
mvn -B -q -o -pl integration-tests test-compile dependency:build-classpath \
  -Dmdep.outputFile="$ROOT/integration-tests/target/test-classpath.txt" -Dmdep.includeScope=test >&2
exec java -Xmx1g --add-exports=java.base/jdk.internal.misc=ALL-UNNAMED \
  -Dlockstep.home="$ROOT" -Dorg.bytedeco.javacpp.cachedir="$ROOT/target/javacpp" \
  -cp "integration-tests/target/test-classes:$(cat integration-tests/target/test-classpath.txt)" \
  io.lockstep.it.ScalingBench "$@"
