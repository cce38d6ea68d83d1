package io.lockstep.ps;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.lockstep.conf.SyncMode;
import io.lockstep.conf.Transport;
import io.lockstep.protocol.FrameKey;
import io.lockstep.protocol.ParameterServerException;
import io.lockstep.protocol.ServerAddress;
import io.lockstep.ps.client.GradientExchange;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.UUID;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The asynchronous server ({@code async}, {@code stale-sync}) against a real media driver: updates
 * are answered without waiting for others, within the staleness bound, and a stage's last step
 * brings every worker to the same sum. Updates are small integers so that any arrival order gives
 * the same exact sum.
 */
@Timeout(120)
class AsyncServerTest {
  private static final int PARAMETERS = 3000;
  private final ExecutorService threads = Executors.newCachedThreadPool();

  @AfterEach
  void stopThreads() {
    threads.shutdownNow();
  }

  private static ServerAddress address(SyncMode mode, int staleness, long jobId) {
    return new ServerAddress(
            Transport.IPC,
            "/dev/shm/lockstep-test-" + UUID.randomUUID(),
            "127.0.0.1",
            40000,
            1 << 20,
            4096,
            jobId,
            2,
            PARAMETERS,
            FrameKey.random())
        .withMode(mode, staleness);
  }

  private static ParameterServer launch(ServerAddress address, Duration stepTimeout) {
    return ParameterServer.launch(
        new ParameterServer.Context().address(address).stepTimeout(stepTimeout));
  }

  private static GradientExchange connect(ServerAddress address, int rank) {
    return GradientExchange.connect(
        new GradientExchange.Context()
            .address(address)
            .rank(rank)
            .stepTimeout(Duration.ofSeconds(30))
            .connectTimeout(Duration.ofSeconds(30)));
  }

  private static UnsafeBuffer update(int rank, long step) {
    final ByteBuffer bytes =
        ByteBuffer.allocateDirect(PARAMETERS * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < PARAMETERS; i++) {
      bytes.putFloat(i * Float.BYTES, (rank + 1) * 10 + step + i % 7);
    }
    return new UnsafeBuffer(bytes);
  }

  private static float[] floats(UnsafeBuffer buffer) {
    final float[] values = new float[PARAMETERS];
    for (int i = 0; i < PARAMETERS; i++) {
      values[i] = buffer.getFloat(i * Float.BYTES, ByteOrder.LITTLE_ENDIAN);
    }
    return values;
  }

  /** The sum of ranks' updates for steps {@code [from, to)}. */
  private static float[] sum(int[] ranks, long from, long to) {
    final float[] sum = new float[PARAMETERS];
    for (int rank : ranks) {
      for (long step = from; step < to; step++) {
        final float[] u = floats(update(rank, step));
        for (int i = 0; i < PARAMETERS; i++) {
          sum[i] += u[i];
        }
      }
    }
    return sum;
  }

  @Test
  void shouldAnswerAnAsyncWorkerAtOnceAndBringAllToTheSameSumAtTheStageEnd() throws Exception {
    final ServerAddress address = address(SyncMode.ASYNC, 0, 0xA5);
    try (ParameterServer server = launch(address, Duration.ofSeconds(30));
        GradientExchange fast = connect(address, 0);
        GradientExchange slow = connect(address, 1)) {
      // Rank 0 runs five steps while rank 1 has sent nothing: never held back.
      for (long step = 0; step < 5; step++) {
        final UnsafeBuffer buffer = update(0, step);
        fast.exchange(step, buffer, 8, false);
        assertArrayEquals(sum(new int[] {0}, 0, step + 1), floats(buffer), "step " + step);
      }
      // Its last step of the stage waits for rank 1's last step.
      final Future<float[]> last =
          threads.submit(
              () -> {
                final UnsafeBuffer buffer = update(0, 5);
                fast.exchange(5, buffer, 8, true);
                return floats(buffer);
              });
      for (long step = 0; step < 5; step++) {
        slow.exchange(step, update(1, step), 8, false);
      }
      Thread.sleep(300);
      assertFalse(last.isDone(), "the last step is answered once every worker has sent it");
      final UnsafeBuffer buffer = update(1, 5);
      slow.exchange(5, buffer, 8, true);
      final float[] everything = sum(new int[] {0, 1}, 0, 6);
      assertArrayEquals(everything, floats(buffer));
      assertArrayEquals(everything, last.get(30, TimeUnit.SECONDS));
      assertEquals(0, server.rejectedFrames());
    }
  }

  @Test
  void shouldStartTheNextStageFromZeroOnNewStreams() throws Exception {
    final ServerAddress address = address(SyncMode.ASYNC, 0, 0xA6);
    try (ParameterServer server = launch(address, Duration.ofSeconds(30))) {
      for (int stage = 0; stage < 2; stage++) {
        final long step = stage;
        final Future<float[]> other =
            threads.submit(
                () -> {
                  try (GradientExchange exchange = connect(address, 1)) {
                    final UnsafeBuffer buffer = update(1, step);
                    exchange.exchange(step, buffer, 8, true);
                    return floats(buffer);
                  }
                });
        try (GradientExchange exchange = connect(address, 0)) {
          final UnsafeBuffer buffer = update(0, step);
          exchange.exchange(step, buffer, 8, true);
          assertArrayEquals(sum(new int[] {0, 1}, step, step + 1), floats(buffer));
        }
        assertArrayEquals(sum(new int[] {0, 1}, step, step + 1), other.get(30, TimeUnit.SECONDS));
      }
      assertEquals(0, server.rejectedFrames());
      assertEquals(2, server.stepsCompleted());
    }
  }

  @Test
  void shouldHoldAStaleSyncWorkerWithinTheBoundAndNameTheWorkerItWaitsFor() throws Exception {
    final ServerAddress address = address(SyncMode.STALE_SYNC, 1, 0xA7);
    try (ParameterServer server = launch(address, Duration.ofSeconds(2));
        GradientExchange fast = connect(address, 0);
        GradientExchange idle = connect(address, 1)) {
      // Step 0 is within 1 step of the idle worker's step -1; step 1 would be 2 ahead.
      fast.exchange(0, update(0, 0), 8, false);
      final ParameterServerException e =
          assertThrows(ParameterServerException.class, () -> fast.exchange(1, update(0, 1), 8));
      assertTrue(
          e.getMessage().contains("waited 2.0 s for workers [1 (never heard from)]"),
          e.getMessage());
      assertTrue(e.getMessage().contains("lockstep.ps.step-timeout"), e.getMessage());
      assertThrows(ParameterServerException.class, server::checkHealthy);
    }
  }

  @Test
  void shouldRejectAnotherJobsUpdatesAndNeverAddThem() throws Exception {
    final ServerAddress address = address(SyncMode.ASYNC, 0, 0xA8);
    final ServerAddress foreign = impostor(address, 0xA9, address.key());
    try (ParameterServer server = launch(address, Duration.ofSeconds(30));
        GradientExchange worker = connect(address, 0)) {
      try (GradientExchange intruder =
          GradientExchange.connect(
              new GradientExchange.Context()
                  .address(foreign)
                  .rank(1)
                  .stepTimeout(Duration.ofSeconds(1))
                  .connectTimeout(Duration.ofSeconds(30)))) {
        assertThrows(ParameterServerException.class, () -> intruder.exchange(0, update(1, 0), 8));
      }
      assertTrue(server.rejectedFrames() > 0);
      final UnsafeBuffer buffer = update(0, 0);
      worker.exchange(0, buffer, 8, false);
      assertArrayEquals(sum(new int[] {0}, 0, 1), floats(buffer), "nothing of the intruder's");
    }
  }

  @Test
  void shouldRefuseAWorkerWithTheWrongKeyAndNeverAddItsUpdates() throws Exception {
    final ServerAddress address = address(SyncMode.ASYNC, 0, 0xAA);
    // the job's id, a real rank and the job's streams, but not the job's key
    final ServerAddress forged = impostor(address, address.jobId(), FrameKey.random());
    final int chunks = address.layout().chunkCount();
    try (ParameterServer server = launch(address, Duration.ofSeconds(30));
        GradientExchange worker = connect(address, 0)) {
      try (GradientExchange intruder =
          GradientExchange.connect(
              new GradientExchange.Context()
                  .address(forged)
                  .rank(1)
                  .stepTimeout(Duration.ofSeconds(1))
                  .connectTimeout(Duration.ofSeconds(30)))) {
        final UnsafeBuffer poison = update(1, 0);
        for (int i = 0; i < PARAMETERS; i++) {
          poison.putFloat(i * Float.BYTES, 1e6f, ByteOrder.LITTLE_ENDIAN);
        }
        final ParameterServerException refused =
            assertThrows(ParameterServerException.class, () -> intruder.exchange(0, poison, 8));
        assertTrue(refused.getMessage().contains("no result"), refused.getMessage());
        intruder.abort(0, "a forged abort", true);
        final long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
        while (server.rejectedFrames() < chunks + 1) {
          assertTrue(System.nanoTime() < deadline, server.rejectedFrames() + " rejected");
          Thread.onSpinWait();
        }
      }
      server.checkHealthy();

      // the job's workers, rank 1 on a stream of its own: nothing of the intruder's in any answer
      final UnsafeBuffer first = update(0, 0);
      worker.exchange(0, first, 8, false);
      assertArrayEquals(sum(new int[] {0}, 0, 1), floats(first), "step 0 of rank 0 alone");
      final Future<float[]> last =
          threads.submit(
              () -> {
                final UnsafeBuffer buffer = update(0, 1);
                worker.exchange(1, buffer, 8, true);
                return floats(buffer);
              });
      final float[] everything = sum(new int[] {0, 1}, 0, 2);
      try (GradientExchange rank1 = connect(address, 1)) {
        rank1.exchange(0, update(1, 0), 8, false);
        final UnsafeBuffer buffer = update(1, 1);
        rank1.exchange(1, buffer, 8, true);
        assertArrayEquals(everything, floats(buffer));
      }
      assertArrayEquals(everything, last.get(30, TimeUnit.SECONDS));
      assertEquals(chunks + 1, server.rejectedFrames());
      server.checkHealthy();
    }
  }

  /** {@code address}'s streams and server under another job id or key, asynchronous. */
  private static ServerAddress impostor(ServerAddress address, long jobId, FrameKey key) {
    return new ServerAddress(
            address.transport(),
            address.aeronDirectory(),
            address.host(),
            address.port(),
            address.termLengthBytes(),
            address.chunkBytes(),
            jobId,
            address.workers(),
            address.parameterCount(),
            key)
        .withMode(SyncMode.ASYNC, 0);
  }
}
