package io.lockstep.worker;

import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.nativeblas.NativeOpsHolder;

/**
 * The threads a worker's ND4J operations use. On a host's cores, OpenMP teams of workers that share
 * the host and OpenBLAS's own threads oversubscribe the cores and make every operation several
 * times slower, so each worker gets its share of the cores for OpenMP (oneDNN runs on it) and
 * OpenBLAS gets one thread. ND4J resets OpenBLAS's count at start-up, so the environment variable
 * {@code OPENBLAS_NUM_THREADS} has no effect: it is set here, in code. The settings are per
 * process: workers that share a JVM (Spark local mode) share them, and must be counted in {@code
 * workersOnHost}.
 */
public final class ComputeThreads {
  private ComputeThreads() {}

  /**
   * The OpenMP threads of one worker.
   *
   * @param requested {@code lockstep.worker.threads}: a count, or 0 for the host's share
   * @param workersOnHost the workers that compute on this host at once
   * @param cores the host's cores
   * @return {@code requested}, or the cores divided among the workers, at least 1
   */
  static int resolve(int requested, int workersOnHost, int cores) {
    if (requested > 0) {
      return requested;
    }
    return Math.max(1, cores / Math.max(1, workersOnHost));
  }

  /**
   * Sets this process's ND4J threads for a worker.
   *
   * @param requested {@code lockstep.worker.threads}: a count, or 0 for the host's share
   * @param workersOnHost the workers that compute on this host at once
   * @return the OpenMP threads set
   */
  public static int configure(int requested, int workersOnHost) {
    final int threads =
        resolve(requested, workersOnHost, Runtime.getRuntime().availableProcessors());
    Nd4j.getEnvironment().setMaxThreads(threads);
    Nd4j.getEnvironment().setMaxMasterThreads(threads);
    Nd4j.factory().blas().setMaxThreads(1);
    // OpenMP's team size for parallel regions this thread starts: oneDNN's primitives (the engine's
    // and Deeplearning4j's helpers') run on it; the setting is the calling thread's own
    NativeOpsHolder.getInstance().getDeviceNativeOps().setOmpNumThreads(threads);
    return threads;
  }
}
