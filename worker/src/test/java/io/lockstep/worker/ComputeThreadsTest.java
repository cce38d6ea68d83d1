package io.lockstep.worker;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import org.nd4j.nativeblas.NativeOpsHolder;

class ComputeThreadsTest {

  @Test
  void theHostsCoresAreDividedAmongItsWorkers() {
    assertEquals(16, ComputeThreads.resolve(0, 1, 16));
    assertEquals(8, ComputeThreads.resolve(0, 2, 16));
    assertEquals(5, ComputeThreads.resolve(0, 3, 16));
    assertEquals(1, ComputeThreads.resolve(0, 4, 2), "at least one thread");
    assertEquals(3, ComputeThreads.resolve(3, 4, 2), "an explicit count is kept");
  }

  /** Two workers of one JVM (Spark local mode) each get their own OpenMP team size. */
  @Test
  void eachWorkerThreadKeepsItsOwnOpenMpTeam() throws Exception {
    final ExecutorService threads = Executors.newFixedThreadPool(2);
    try {
      final Future<Integer> one =
          threads.submit(
              () -> {
                ComputeThreads.configure(1, 2);
                Thread.sleep(200);
                return NativeOpsHolder.getInstance().getDeviceNativeOps().ompGetMaxThreads();
              });
      final Future<Integer> three =
          threads.submit(
              () -> {
                ComputeThreads.configure(3, 1);
                Thread.sleep(200);
                return NativeOpsHolder.getInstance().getDeviceNativeOps().ompGetMaxThreads();
              });
      assertEquals(1, one.get());
      assertEquals(3, three.get());
    } finally {
      threads.shutdownNow();
    }
  }
}
