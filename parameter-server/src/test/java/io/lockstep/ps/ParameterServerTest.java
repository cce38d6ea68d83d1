package io.lockstep.ps;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.aeron.Aeron;
import io.aeron.ExclusivePublication;
import io.aeron.Subscription;
import io.lockstep.conf.Transport;
import io.lockstep.protocol.Frame;
import io.lockstep.protocol.FrameKey;
import io.lockstep.protocol.FramePublisher;
import io.lockstep.protocol.FrameTag;
import io.lockstep.protocol.ParameterServerException;
import io.lockstep.protocol.ServerAddress;
import io.lockstep.protocol.ServerShards;
import io.lockstep.ps.client.GradientExchange;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.UUID;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.SystemNanoClock;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** The parameter server against real Aeron media drivers, workers on threads. */
@Timeout(120)
class ParameterServerTest {
  private static final long JOB_ID = 0x5EED;
  private final ExecutorService threads = Executors.newCachedThreadPool();

  @AfterEach
  void stopThreads() {
    threads.shutdownNow();
  }

  private static ServerAddress address(
      Transport transport, int workers, int parameters, int chunkBytes) {
    return new ServerAddress(
        transport,
        "/dev/shm/lockstep-test-" + UUID.randomUUID(),
        "127.0.0.1",
        41000 + (int) (Math.random() * 2000) * 2,
        16 << 20,
        chunkBytes,
        JOB_ID,
        workers,
        parameters,
        FrameKey.random());
  }

  private static ParameterServer launch(ServerAddress address, Duration stepTimeout) {
    return ParameterServer.launch(
        new ParameterServer.Context().address(address).stepTimeout(stepTimeout));
  }

  private static GradientExchange connect(ServerAddress address, int rank) {
    return connect(ServerShards.of(address), rank);
  }

  private static GradientExchange connect(ServerShards shards, int rank) {
    return GradientExchange.connect(
        new GradientExchange.Context()
            .shards(shards)
            .rank(rank)
            .workerHost("127.0.0.1")
            .stepTimeout(Duration.ofSeconds(30))
            .connectTimeout(Duration.ofSeconds(30)));
  }

  /** Frames signed with {@code key} on a stream of the test's own, as a forger would send them. */
  static FramePublisher rawPublisher(ExclusivePublication raw, FrameKey key, String role) {
    return new FramePublisher(
        raw,
        key,
        SystemNanoClock.INSTANCE,
        new BackoffIdleStrategy(),
        Duration.ofSeconds(10).toNanos(),
        () -> {},
        role);
  }

  private static UnsafeBuffer vector(float[] values) {
    final ByteBuffer bytes =
        ByteBuffer.allocateDirect(values.length * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
    bytes.asFloatBuffer().put(values);
    return new UnsafeBuffer(bytes);
  }

  private static float[] floats(UnsafeBuffer buffer) {
    final float[] values = new float[buffer.capacity() / Float.BYTES];
    for (int i = 0; i < values.length; i++) {
      values[i] = buffer.getFloat(i * Float.BYTES, ByteOrder.LITTLE_ENDIAN);
    }
    return values;
  }

  /** Runs {@code steps} exchanges on every rank; rank r's step-s gradient is f(r, s, i). */
  private List<float[]> runWorkers(ServerAddress address, int steps, int[] samples)
      throws Exception {
    return runWorkers(ServerShards.of(address), steps, samples);
  }

  private List<float[]> runWorkers(ServerShards address, int steps, int[] samples)
      throws Exception {
    return runWorkers(address, 0, steps, samples);
  }

  private List<float[]> runWorkers(ServerShards address, int firstStep, int steps, int[] samples)
      throws Exception {
    final List<Future<float[]>> results = new ArrayList<>();
    for (int rank = 0; rank < address.workers(); rank++) {
      final int r = rank;
      results.add(
          threads.submit(
              () -> {
                try (GradientExchange exchange = connect(address, r)) {
                  float[] last = null;
                  for (int step = firstStep; step < firstStep + steps; step++) {
                    final float[] g = new float[address.parameterCount()];
                    for (int i = 0; i < g.length; i++) {
                      g[i] = contribution(r, step, i);
                    }
                    final UnsafeBuffer buffer = vector(g);
                    final int total = exchange.exchange(step, buffer, samples[r]);
                    assertEquals(sum(samples), total);
                    last = floats(buffer);
                  }
                  return last;
                }
              }));
    }
    final List<float[]> out = new ArrayList<>();
    for (Future<float[]> f : results) {
      out.add(f.get());
    }
    return out;
  }

  private static float contribution(int rank, int step, int i) {
    return (rank + 1) * 0.5f + step * 0.25f + (i % 97) * 1e-3f;
  }

  private static int sum(int[] values) {
    int s = 0;
    for (int v : values) {
      s += v;
    }
    return s;
  }

  @Test
  void shouldGiveEveryWorkerTheRankOrderedSumOverIpc() throws Exception {
    final ServerAddress address = address(Transport.IPC, 3, 10_000, 4096);
    try (ParameterServer server = launch(address, Duration.ofSeconds(30))) {
      final List<float[]> results = runWorkers(address, 3, new int[] {43, 43, 42});
      final float[] expected = new float[address.parameterCount()];
      for (int i = 0; i < expected.length; i++) {
        float acc = contribution(0, 2, i);
        for (int rank = 1; rank < 3; rank++) {
          acc += contribution(rank, 2, i);
        }
        expected[i] = acc;
      }
      for (float[] result : results) {
        assertArrayEquals(expected, result, 0f);
      }
      assertEquals(3, server.stepsCompleted());
      assertEquals(0, server.rejectedFrames());
      server.checkHealthy();
    }
  }

  @ParameterizedTest
  @EnumSource(Transport.class)
  void shouldGiveTheSameSumFromThreeShardsAsFromOneServer(Transport transport) throws Exception {
    final ServerAddress whole = address(transport, 3, 10_001, 4096);
    final ServerShards shards = ServerShards.split(whole, 3);
    assertEquals(whole.parameterCount(), shards.parameterCount());
    assertEquals(
        List.of(3072, 3072, 3857),
        shards.shards().stream().map(ServerAddress::parameterCount).toList());
    final List<float[]> unsharded;
    try (ParameterServer server = launch(whole, Duration.ofSeconds(30))) {
      unsharded = runWorkers(whole, 3, new int[] {43, 43, 42});
    }
    final ServerShards fresh = ServerShards.split(address(transport, 3, 10_001, 4096), 3);
    try (ParameterServer server =
        ParameterServer.launch(
            new ParameterServer.Context().shards(fresh).stepTimeout(Duration.ofSeconds(30)))) {
      final List<float[]> sharded = runWorkers(fresh, 3, new int[] {43, 43, 42});
      for (int rank = 0; rank < 3; rank++) {
        assertArrayEquals(unsharded.get(rank), sharded.get(rank), 0f);
      }
      assertEquals(3, server.stepsCompleted());
      assertEquals(0, server.rejectedFrames());
      server.checkHealthy();
    }
  }

  @Test
  void shouldSumAGradientSentPieceByPieceAsTheWholeOneAcrossShards() throws Exception {
    final ServerShards shards = ServerShards.split(address(Transport.IPC, 2, 10_001, 4096), 3);
    try (ParameterServer server =
        ParameterServer.launch(
            new ParameterServer.Context().shards(shards).stepTimeout(Duration.ofSeconds(30)))) {
      final List<Future<float[]>> results = new ArrayList<>();
      for (int rank = 0; rank < 2; rank++) {
        final int r = rank;
        results.add(
            threads.submit(
                () -> {
                  try (GradientExchange exchange = connect(shards, r)) {
                    final int n = shards.parameterCount();
                    final UnsafeBuffer buffer = vector(new float[n]);
                    float[] last = null;
                    for (int step = 0; step < 2; step++) {
                      exchange.begin(step, buffer, 5, false);
                      for (int i = 9216; i < n; i++) {
                        buffer.putFloat(
                            i * Float.BYTES, contribution(r, step, i), ByteOrder.LITTLE_ENDIAN);
                      }
                      // The last chunk alone is final: its sum comes back before the rest is sent.
                      final long deadline = System.nanoTime() + 20_000_000_000L;
                      while (exchange.ready(9216) == 0) {
                        assertTrue(System.nanoTime() < deadline, "no early answer");
                        Thread.onSpinWait();
                      }
                      assertEquals(
                          contribution(0, step, n - 1) + contribution(1, step, n - 1),
                          buffer.getFloat((n - 1) * Float.BYTES, ByteOrder.LITTLE_ENDIAN));
                      // As a backward pass does: the vector is finished from its end down, in
                      // pieces that do not line up with chunks or shards.
                      for (int end = 9216; end > 0; end -= 1777) {
                        final int first = Math.max(0, end - 1777);
                        for (int i = first; i < end; i++) {
                          buffer.putFloat(
                              i * Float.BYTES, contribution(r, step, i), ByteOrder.LITTLE_ENDIAN);
                        }
                        exchange.ready(first);
                      }
                      assertEquals(10, exchange.finish());
                      last = floats(buffer);
                    }
                    final IllegalStateException notBegun =
                        assertThrows(IllegalStateException.class, () -> exchange.ready(0));
                    assertTrue(notBegun.getMessage().contains("call begin"), notBegun.getMessage());
                    exchange.begin(2, buffer, 5, false);
                    final IllegalStateException open =
                        assertThrows(
                            IllegalStateException.class,
                            () -> exchange.reduceStatistics(2, 0, vector(new float[2]), 2));
                    assertTrue(open.getMessage().contains("is open"), open.getMessage());
                    return last;
                  }
                }));
      }
      final float[] expected = new float[shards.parameterCount()];
      for (int i = 0; i < expected.length; i++) {
        expected[i] = contribution(0, 1, i) + contribution(1, 1, i);
      }
      for (Future<float[]> result : results) {
        assertArrayEquals(expected, result.get(), 0f);
      }
      assertEquals(2, server.stepsCompleted());
      assertEquals(0, server.rejectedFrames());
      server.checkHealthy();
    }
  }

  /** Starts a {@code parameter-server} process, a real JVM, and waits until it listens. */
  static Process shardProcess(int port, Path log, Path secret) throws Exception {
    final Process process =
        new ProcessBuilder(
                Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED",
                "-Xmx256m",
                "-cp",
                System.getProperty("java.class.path"),
                ShardServer.class.getName(),
                "--host",
                "127.0.0.1",
                "--port",
                String.valueOf(port),
                "--jobs",
                "1",
                "--secret-file",
                secret.toString())
            .redirectErrorStream(true)
            .redirectOutput(log.toFile())
            .start();
    final long deadline = System.nanoTime() + 60_000_000_000L;
    while (!Files.readString(log).contains("parameter-server: listening")) {
      assertTrue(process.isAlive(), "the shard process exited: " + Files.readString(log));
      assertTrue(System.nanoTime() < deadline, "the shard process did not start listening");
      Thread.sleep(20);
    }
    return process;
  }

  @Test
  void shouldSumThroughTwoShardProcessesAsOneServerDoes(@TempDir Path logs) throws Exception {
    final ServerAddress whole = address(Transport.UDP, 2, 20_000, 4096);
    final List<float[]> unsharded;
    try (ParameterServer server = launch(whole, Duration.ofSeconds(30))) {
      unsharded = runWorkers(whole, 3, new int[] {50, 50});
    }
    final int basePort = 43000 + (int) (Math.random() * 1000) * 4;
    final byte[] secret = secret(7);
    final Path secretFile = secretFile(logs, secret);
    final List<Process> processes = new ArrayList<>();
    try {
      processes.add(shardProcess(basePort, logs.resolve("shard-0.log"), secretFile));
      processes.add(shardProcess(basePort + 2, logs.resolve("shard-1.log"), secretFile));
      final ServerAddress job = withKey(whole, FrameKey.forJob(secret, JOB_ID));
      try (RemoteShards server =
          RemoteShards.configure(
              new RemoteShards.Context()
                  .servers(List.of("127.0.0.1:" + basePort, "127.0.0.1:" + (basePort + 2)))
                  .address(job)
                  .stepTimeout(Duration.ofSeconds(30))
                  .connectTimeout(Duration.ofSeconds(30)))) {
        assertEquals(2, server.shards().count(), () -> logs(logs));
        final List<float[]> sharded = runWorkers(server.shards(), 3, new int[] {50, 50});
        for (int rank = 0; rank < 2; rank++) {
          assertArrayEquals(unsharded.get(rank), sharded.get(rank), 0f);
        }
        server.checkHealthy();
        final long deadline = System.nanoTime() + 5_000_000_000L;
        while (server.stepsCompleted() < 3 && System.nanoTime() < deadline) {
          Thread.sleep(50);
        }
        assertEquals(3, server.stepsCompleted());
        assertEquals(0, server.rejectedFrames());
      }
      for (Process process : processes) {
        assertTrue(process.waitFor(30, TimeUnit.SECONDS), "a shard process did not end its job");
        assertEquals(0, process.exitValue());
      }
    } catch (Exception | AssertionError e) {
      throw new AssertionError(e.getMessage() + "\n" + logs(logs), e);
    } finally {
      for (Process process : processes) {
        process.destroyForcibly();
      }
    }
  }

  @Test
  void shouldNotServeADriverWhoseSecretDiffers(@TempDir Path logs) throws Exception {
    final int port = 43000 + (int) (Math.random() * 1000) * 4;
    final Process shard =
        shardProcess(port, logs.resolve("shard-0.log"), secretFile(logs, secret(1)));
    try {
      final ServerAddress job =
          withKey(address(Transport.UDP, 2, 20_000, 4096), FrameKey.forJob(secret(2), JOB_ID));
      final ParameterServerException refused =
          assertThrows(
              ParameterServerException.class,
              () ->
                  RemoteShards.configure(
                      new RemoteShards.Context()
                          .servers(List.of("127.0.0.1:" + port))
                          .address(job)
                          .connectTimeout(Duration.ofSeconds(3))));
      assertTrue(refused.getMessage().contains("lockstep.ps.secret-file"), refused.getMessage());
      final String log = Files.readString(logs.resolve("shard-0.log"));
      assertTrue(log.contains("with a wrong tag"), log);
      assertFalse(log.contains("serving shard"), log);
    } finally {
      shard.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
    }
  }

  static byte[] secret(int seed) {
    final byte[] secret = new byte[32];
    new Random(seed).nextBytes(secret);
    return secret;
  }

  /** The secret in a file only its owner may read, as the shard process demands. */
  static Path secretFile(Path folder, byte[] secret) throws IOException {
    final Path file = folder.resolve("secret-" + Arrays.hashCode(secret));
    Files.write(file, secret);
    Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rw-------"));
    return file;
  }

  private static ServerAddress withKey(ServerAddress address, FrameKey key) {
    return new ServerAddress(
        address.transport(),
        address.aeronDirectory(),
        address.host(),
        address.port(),
        address.termLengthBytes(),
        address.chunkBytes(),
        address.jobId(),
        address.workers(),
        address.parameterCount(),
        address.shard(),
        address.mode(),
        address.staleness(),
        key);
  }

  private static String logs(Path folder) {
    final StringBuilder text = new StringBuilder();
    for (String name : List.of("shard-0.log", "shard-1.log")) {
      try {
        text.append(name).append(":\n").append(Files.readString(folder.resolve(name)));
      } catch (java.io.IOException e) {
        text.append(name).append(": ").append(e).append('\n');
      }
    }
    return text.toString();
  }

  @Test
  void shouldNameAShardProcessThatDoesNotAnswer() {
    final ServerAddress job = address(Transport.UDP, 2, 20_000, 4096);
    final ParameterServerException e =
        assertThrows(
            ParameterServerException.class,
            () ->
                RemoteShards.configure(
                    new RemoteShards.Context()
                        .servers(List.of("127.0.0.1:" + (job.port() + 2)))
                        .address(job)
                        .connectTimeout(Duration.ofSeconds(2))));
    assertTrue(
        e.getMessage().contains("[127.0.0.1:" + (job.port() + 2) + "] did not answer within 2 s"),
        e.getMessage());
  }

  @Test
  void shouldRejectMoreShardsThanChunks() {
    final IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () -> ServerShards.split(address(Transport.IPC, 2, 3000, 4096), 4));
    assertTrue(e.getMessage().contains("4 shards for a gradient of 3 chunks"), e.getMessage());
  }

  @Test
  void shouldAddInRankOrderWhenHigherRanksArriveFirst() throws Exception {
    // Float addition is not associative: (1 + 1e8) - 1e8 == 0, while (-1e8 + 1e8) + 1 == 1.
    final float[] byRank = {1f, 1e8f, -1e8f};
    final ServerAddress address = address(Transport.IPC, 3, 30_000, 4096);
    try (ParameterServer server = launch(address, Duration.ofSeconds(30))) {
      final List<Future<float[]>> results = new ArrayList<>();
      for (int rank = 2; rank >= 0; rank--) {
        final int r = rank;
        results.add(
            threads.submit(
                () -> {
                  try (GradientExchange exchange = connect(address, r)) {
                    final float[] g = new float[address.parameterCount()];
                    Arrays.fill(g, byRank[r]);
                    final UnsafeBuffer buffer = vector(g);
                    exchange.exchange(0, buffer, 1);
                    return floats(buffer);
                  }
                }));
        Thread.sleep(300);
      }
      final float[] expected = new float[address.parameterCount()];
      Arrays.fill(expected, (byRank[0] + byRank[1]) + byRank[2]);
      for (Future<float[]> result : results) {
        assertArrayEquals(expected, result.get(), 0f);
      }
      assertEquals(0f, expected[0]);
      server.checkHealthy();
    }
  }

  @Test
  void shouldPassResNet18SizedGradientLargerThanAeronsLargestMessage() throws Exception {
    // 11,173,962 floats = 44.7 MB; with a 16 MiB term Aeron's largest message is 2 MiB.
    final ServerAddress address =
        address(Transport.IPC, 2, 11_173_962, ServerAddress.UNFRAGMENTED_CHUNK_BYTES);
    assertTrue(address.parameterCount() * 4L > (16 << 20) / 8);
    try (ParameterServer server = launch(address, Duration.ofSeconds(60))) {
      final List<float[]> results = runWorkers(address, 1, new int[] {64, 64});
      for (float[] result : results) {
        assertEquals(result.length, address.parameterCount());
        for (int i = 0; i < result.length; i += 999_983) {
          assertEquals(contribution(0, 0, i) + contribution(1, 0, i), result[i], 0f);
        }
        assertEquals(
            contribution(0, 0, result.length - 1) + contribution(1, 0, result.length - 1),
            result[result.length - 1],
            0f);
      }
      assertEquals(1, server.stepsCompleted());
    }
  }

  @Test
  void shouldSynchronizeOverUdpInDatagramsTheChunkSizeSets() throws Exception {
    // a chunk that fits a 9000-byte jumbo frame: 8896 + 64 + 32 = 8992 bytes on the wire
    final ServerAddress address = address(Transport.UDP, 2, 50_000, 8896);
    assertTrue(address.gradientChannel().contains("|mtu=8992"), address.gradientChannel());
    assertTrue(
        address.resultPublicationChannel().contains("|mtu=8992"),
        address.resultPublicationChannel());
    // rounded up to Aeron's 32-byte frame alignment
    assertEquals(4224, address(Transport.IPC, 2, 50_000, 4100).mtu());
    assertEquals(65504, address(Transport.IPC, 2, 50_000, 65408).mtu());
    try (ParameterServer server = launch(address, Duration.ofSeconds(30))) {
      final List<float[]> results = runWorkers(address, 2, new int[] {10, 0});
      assertArrayEquals(results.get(0), results.get(1), 0f);
      assertEquals(contribution(0, 1, 5) + contribution(1, 1, 5), results.get(0)[5], 0f);
      assertEquals(2, server.stepsCompleted());
    }
  }

  /** A worker that took part and then stalls is named with the address its frames came from. */
  @Test
  void shouldNameTheHostOfAWorkerThatStalls() throws Exception {
    final ServerAddress address = address(Transport.UDP, 2, 1000, 4096);
    final CountDownLatch done = new CountDownLatch(1);
    try (ParameterServer server = launch(address, Duration.ofMillis(500))) {
      final Future<?> stalled =
          threads.submit(
              () -> {
                try (GradientExchange exchange = connect(address, 1)) {
                  exchange.exchange(0, vector(new float[1000]), 1);
                  // alive and connected, but never sends step 1
                  done.await(30, TimeUnit.SECONDS);
                }
                return null;
              });
      try (GradientExchange exchange = connect(address, 0)) {
        exchange.exchange(0, vector(new float[1000]), 1);
        final Exception e =
            assertThrows(
                ParameterServerException.class,
                () -> exchange.exchange(1, vector(new float[1000]), 1));
        assertTrue(e.getMessage().contains("step 1"), e.getMessage());
        assertTrue(e.getMessage().contains("[1 (from 127.0.0.1:"), e.getMessage());
      } finally {
        done.countDown();
      }
      stalled.get(30, TimeUnit.SECONDS);
    }
  }

  /**
   * The server goes away in the middle of a step: its worker fails well before the step timeout,
   * saying so, instead of waiting it out.
   */
  @Test
  void shouldFailFastWhenTheServerGoesAway() throws Exception {
    final ServerAddress address = address(Transport.UDP, 2, 1000, 4096);
    final ParameterServer server = launch(address, Duration.ofSeconds(120));
    try (GradientExchange exchange = connect(address, 0)) {
      // rank 1 never sends, so step 0 waits; the server stops while it does
      final Future<?> stopped =
          threads.submit(
              () -> {
                Thread.sleep(500);
                server.close();
                return null;
              });
      final long start = System.nanoTime();
      final ParameterServerException e =
          assertThrows(
              ParameterServerException.class,
              () -> exchange.exchange(0, vector(new float[1000]), 1));
      final double seconds = (System.nanoTime() - start) / 1e9;
      assertTrue(e.getMessage().contains("stopped or crashed"), e.getMessage());
      assertTrue(seconds < 30, seconds + " s to notice, the step timeout is 120 s");
      stopped.get(30, TimeUnit.SECONDS);
    } finally {
      server.close();
    }
  }

  @Test
  void shouldNameTheMissingRankAndStepWhenAWorkerNeverSends() throws Exception {
    final ServerAddress address = address(Transport.IPC, 2, 1000, 4096);
    try (ParameterServer server = launch(address, Duration.ofMillis(500))) {
      final Future<?> lonely =
          threads.submit(
              () -> {
                try (GradientExchange exchange = connect(address, 0)) {
                  return exchange.exchange(0, vector(new float[1000]), 1);
                }
              });
      final Exception e = assertThrows(Exception.class, lonely::get);
      assertTrue(e.getMessage().contains("step 0"), e.getMessage());
      assertTrue(e.getMessage().contains("[1 (never heard from)]"), e.getMessage());
      final ParameterServerException failure =
          assertThrows(ParameterServerException.class, server::checkHealthy);
      assertTrue(failure.getMessage().contains("lockstep.ps.step-timeout"), failure.getMessage());
    }
  }

  @Test
  void shouldSumStatisticsRoundsInRankOrderBeforeTheGradient() throws Exception {
    final ServerAddress address = address(Transport.IPC, 3, 1000, 4096);
    try (ParameterServer server = launch(address, Duration.ofSeconds(30))) {
      final List<Future<float[][]>> results = new ArrayList<>();
      for (int rank = 0; rank < 3; rank++) {
        final int r = rank;
        results.add(
            threads.submit(
                () -> {
                  try (GradientExchange exchange = connect(address, r)) {
                    final float[][] out = new float[4][];
                    for (int step = 0; step < 2; step++) {
                      final UnsafeBuffer small = vector(new float[] {r + 0.1f, r * step + 1f});
                      exchange.reduceStatistics(step, 0, small, 2);
                      final UnsafeBuffer wide = vector(new float[] {1f, 2f, r, 4f, 5f});
                      exchange.reduceStatistics(step, 1, wide, 5);
                      final UnsafeBuffer gradient = vector(new float[1000]);
                      gradient.putFloat(0, r, ByteOrder.LITTLE_ENDIAN);
                      exchange.exchange(step, gradient, 1);
                      out[2 * step] = floats(small);
                      out[2 * step + 1] = floats(wide);
                    }
                    return out;
                  }
                }));
      }
      for (Future<float[][]> result : results) {
        final float[][] sums = result.get();
        assertArrayEquals(new float[] {(0.1f + 1.1f) + 2.1f, 3f}, sums[0], 0f);
        assertArrayEquals(new float[] {3f, 6f, 3f, 12f, 15f}, sums[1], 0f);
        assertArrayEquals(new float[] {(0.1f + 1.1f) + 2.1f, 6f}, sums[2], 0f);
      }
      assertEquals(2, server.stepsCompleted());
      assertEquals(0, server.rejectedFrames());
      server.checkHealthy();
    }
  }

  @Test
  void shouldRejectStatisticsOfAnotherLengthAndNameTheRound() throws Exception {
    final ServerAddress address = address(Transport.IPC, 2, 1000, 4096);
    try (ParameterServer server = launch(address, Duration.ofMillis(800))) {
      final List<Future<?>> workers = new ArrayList<>();
      for (int rank = 0; rank < 2; rank++) {
        final int length = 3 + rank;
        final int r = rank;
        workers.add(
            threads.submit(
                () -> {
                  try (GradientExchange exchange = connect(address, r)) {
                    exchange.reduceStatistics(0, 0, vector(new float[length]), length);
                  }
                  return null;
                }));
      }
      for (Future<?> worker : workers) {
        final Exception e = assertThrows(Exception.class, worker::get);
        assertTrue(e.getMessage().contains("round 0"), e.getMessage());
      }
      assertEquals(1, server.rejectedFrames());
      final ParameterServerException failure =
          assertThrows(ParameterServerException.class, server::checkHealthy);
      assertTrue(failure.getMessage().contains("SyncBatchNorm round 0"), failure.getMessage());
    }
  }

  @Test
  void shouldRejectFramesOfAnotherJobAndNeverSumThem() throws Exception {
    final ServerAddress address = address(Transport.IPC, 2, 1000, 4096);
    final ServerAddress foreign =
        new ServerAddress(
            address.transport(),
            address.aeronDirectory(),
            address.host(),
            address.port(),
            address.termLengthBytes(),
            address.chunkBytes(),
            JOB_ID + 1,
            address.workers(),
            address.parameterCount(),
            address.key());
    try (ParameterServer server = launch(address, Duration.ofSeconds(30));
        GradientExchange intruder = connect(foreign, 1)) {
      final Future<?> ignored =
          threads.submit(() -> intruder.exchange(0, vector(new float[1000]), 1000));
      final long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
      while (server.rejectedFrames() == 0 && System.nanoTime() < deadline) {
        Thread.onSpinWait();
      }
      assertTrue(server.rejectedFrames() > 0);
      ignored.cancel(true);
      final List<float[]> results = runWorkers(address, 1, new int[] {1, 1});
      assertEquals(contribution(0, 0, 7) + contribution(1, 0, 7), results.get(1)[7], 0f);
    }
  }

  @Test
  void shouldRejectFramesSignedWithAnotherKeyAndNeverSumThem() throws Exception {
    final ServerAddress address = address(Transport.IPC, 2, 1000, 4096);
    // the right job id and a real rank, but not the job's key: a peer that guessed the id
    final ServerAddress forged = withKey(address, FrameKey.random());
    try (ParameterServer server = launch(address, Duration.ofSeconds(30));
        GradientExchange intruder = connect(forged, 1)) {
      final float[] poison = new float[1000];
      Arrays.fill(poison, 1e6f);
      final Future<?> ignored = threads.submit(() -> intruder.exchange(0, vector(poison), 1000));
      final long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
      while (server.rejectedFrames() == 0 && System.nanoTime() < deadline) {
        Thread.onSpinWait();
      }
      assertTrue(server.rejectedFrames() > 0);
      intruder.abort(0, "a forged abort", true);
      ignored.cancel(true);
      final List<float[]> results = runWorkers(address, 2, new int[] {1, 1});
      for (int i = 0; i < 1000; i++) {
        assertEquals(contribution(0, 1, i) + contribution(1, 1, i), results.get(0)[i], 0f);
      }
      server.checkHealthy();
    }
  }

  @Test
  void shouldRejectAReplayOfAnEarlierStepSignedWithTheJobsKey() throws Exception {
    final ServerAddress address = address(Transport.IPC, 2, 1000, 4096);
    try (ParameterServer server = launch(address, Duration.ofSeconds(30));
        Aeron aeron =
            Aeron.connect(new Aeron.Context().aeronDirectoryName(address.aeronDirectory()));
        ExclusivePublication raw =
            aeron.addExclusivePublication(address.gradientChannel(), address.gradientStreamId())) {
      runWorkers(ServerShards.of(address), 0, 1, new int[] {1, 1});
      // step 0's frame of rank 1, signed with the job's key, sent again once step 0 is over
      final FramePublisher replay = rawPublisher(raw, address.key(), "replay");
      final float[] old = new float[1000];
      Arrays.fill(old, 1e6f);
      Frame.encode(replay.header(), Frame.TYPE_GRADIENT, 1, JOB_ID, 0, 0, 1, 1, 4000, 1000);
      replay.send(old, 0, 4000, 0);
      final long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
      while (server.rejectedFrames() == 0 && System.nanoTime() < deadline) {
        Thread.onSpinWait();
      }
      assertEquals(1, server.rejectedFrames());
      final List<float[]> results = runWorkers(ServerShards.of(address), 1, 1, new int[] {1, 1});
      for (int i = 0; i < 1000; i++) {
        assertEquals(contribution(0, 1, i) + contribution(1, 1, i), results.get(1)[i], 0f);
      }
    }
  }

  /**
   * A rogue publisher on the workers' result stream (in the media driver they share with the
   * server) answers a step the server has not summed yet: frames signed with another key, unsigned,
   * signed with the job's key and changed afterwards, the server's genuine answer to the previous
   * step replayed byte for byte and relabelled to the open step, and a forged abort. The worker
   * drops and counts every one, writes none of them into its vector, and takes the server's answer
   * when it comes.
   */
  @Test
  void shouldRejectForgedTamperedAndReplayedResultFramesAndNeverApplyThem() throws Exception {
    final ServerAddress address = address(Transport.IPC, 2, 1000, 1024);
    final int parameters = address.parameterCount();
    final int chunks = address.layout().chunkCount();
    final List<UnsafeBuffer> answersToStep0 = new ArrayList<>();
    try (ParameterServer server = launch(address, Duration.ofSeconds(30));
        Aeron aeron =
            Aeron.connect(new Aeron.Context().aeronDirectoryName(address.aeronDirectory()));
        Subscription recorder =
            aeron.addSubscription(
                address.resultSubscriptionChannel(null), address.resultStreamId());
        ExclusivePublication rogue =
            aeron.addExclusivePublication(
                address.resultPublicationChannel(), address.resultStreamId());
        GradientExchange worker = connect(address, 0);
        GradientExchange peer = connect(address, 1)) {
      // step 0, undisturbed: the server's answer is recorded as it goes by
      final Future<Integer> peerStep0 = threads.submit(() -> peer.exchange(0, gradient(1, 0), 1));
      assertEquals(2, worker.exchange(0, gradient(0, 0), 1));
      assertEquals(2, peerStep0.get());
      final long recordDeadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
      while (answersToStep0.size() < chunks) {
        assertTrue(System.nanoTime() < recordDeadline, "recorded " + answersToStep0.size());
        recorder.poll(
            (buffer, offset, length, header) -> {
              if (Frame.type(buffer, offset) == Frame.TYPE_RESULT) {
                final UnsafeBuffer copy = new UnsafeBuffer(new byte[length]);
                copy.putBytes(0, buffer, offset, length);
                answersToStep0.add(copy);
              }
            },
            16);
      }
      assertEquals(0, worker.rejectedFrames(), "the server's own answers");

      // step 1: the worker's gradient is in, the server waits for the peer's
      final float[] own = new float[parameters];
      for (int i = 0; i < parameters; i++) {
        own[i] = contribution(0, 1, i);
      }
      final UnsafeBuffer vector = vector(own);
      worker.begin(1, vector, 1, false);
      assertEquals(0, worker.ready(0));
      final FrameTag stranger = new FrameTag(FrameKey.random());
      final FrameTag none = new FrameTag(FrameKey.none());
      final FrameTag insider = new FrameTag(address.key());
      int forged = 0;
      for (int chunk = 0; chunk < chunks; chunk++) {
        for (FrameTag tag : List.of(stranger, none)) {
          offer(rogue, poisonedAnswer(address, 1, chunk, tag));
          forged++;
        }
        // signed with the job's key, then one float changed on the way
        final UnsafeBuffer tampered = poisonedAnswer(address, 1, chunk, insider);
        tampered.putFloat(Frame.HEADER_LENGTH, -1e6f, ByteOrder.LITTLE_ENDIAN);
        offer(rogue, tampered);
        forged++;
      }
      for (UnsafeBuffer answer : answersToStep0) {
        offer(rogue, answer);
        final UnsafeBuffer relabelled = new UnsafeBuffer(answer.byteArray().clone());
        relabelled.putLong(Frame.STEP_OFFSET, 1, ByteOrder.LITTLE_ENDIAN);
        offer(rogue, relabelled);
        forged += 2;
      }
      final UnsafeBuffer abort = frameOf(address, Frame.TYPE_ABORT, 1, 0, 0, 16);
      stranger.sign(abort, 0, abort.capacity());
      offer(rogue, abort);
      forged++;

      final long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
      while (worker.rejectedFrames() < forged) {
        assertTrue(System.nanoTime() < deadline, worker.rejectedFrames() + " of " + forged);
        assertEquals(0, worker.ready(0), "chunks of step 1 taken before the server answered");
      }
      assertArrayEquals(own, floats(vector), "nothing forged was written into the vector");

      final Future<Integer> peerStep1 = threads.submit(() -> peer.exchange(1, gradient(1, 1), 1));
      assertEquals(2, worker.finish());
      assertEquals(2, peerStep1.get());
      for (int i = 0; i < parameters; i++) {
        assertEquals(contribution(0, 1, i) + contribution(1, 1, i), floats(vector)[i], 0f);
      }
      assertEquals(forged, worker.rejectedFrames());
      assertEquals(0, server.rejectedFrames());
      server.checkHealthy();
    }
  }

  /** Rank {@code rank}'s gradient at {@code step}, as {@link #runWorkers} sends it. */
  private static UnsafeBuffer gradient(int rank, int step) {
    final float[] g = new float[1000];
    for (int i = 0; i < g.length; i++) {
      g[i] = contribution(rank, step, i);
    }
    return vector(g);
  }

  /** A frame's header and a zeroed payload, unsigned. */
  private static UnsafeBuffer frameOf(
      ServerAddress address, byte type, long step, int chunk, int samples, int payloadBytes) {
    final UnsafeBuffer frame = new UnsafeBuffer(new byte[Frame.HEADER_LENGTH + payloadBytes]);
    Frame.encode(
        frame,
        type,
        0,
        address.jobId(),
        step,
        chunk,
        address.layout().chunkCount(),
        samples,
        payloadBytes,
        address.parameterCount());
    return frame;
  }

  /** A well-formed answer to {@code step}'s chunk, every float 1e6, signed with {@code tag}. */
  private static UnsafeBuffer poisonedAnswer(
      ServerAddress address, long step, int chunk, FrameTag tag) {
    final int bytes = address.layout().lengthBytes(chunk);
    final UnsafeBuffer frame = frameOf(address, Frame.TYPE_RESULT, step, chunk, 2, bytes);
    for (int at = Frame.HEADER_LENGTH; at < frame.capacity(); at += Float.BYTES) {
      frame.putFloat(at, 1e6f, ByteOrder.LITTLE_ENDIAN);
    }
    tag.sign(frame, 0, frame.capacity());
    return frame;
  }

  /** Offers a whole frame, retrying until a subscriber has it. */
  private static void offer(ExclusivePublication publication, UnsafeBuffer frame) {
    final long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
    long result;
    while ((result = publication.offer(frame, 0, frame.capacity())) < 0) {
      assertTrue(System.nanoTime() < deadline, "offer: " + result);
      Thread.onSpinWait();
    }
  }

  @Test
  void shouldAbortEveryWorkerWhenOneReportsAFailure() throws Exception {
    final ServerAddress address = address(Transport.IPC, 2, 1000, 4096);
    try (ParameterServer server = launch(address, Duration.ofSeconds(60));
        GradientExchange failing = connect(address, 1)) {
      final Future<?> waiting =
          threads.submit(
              () -> {
                try (GradientExchange exchange = connect(address, 0)) {
                  return exchange.exchange(0, vector(new float[1000]), 1);
                }
              });
      failing.abort(0, "out of memory", false);
      final Exception e = assertThrows(Exception.class, waiting::get);
      assertTrue(
          e.getMessage().contains("worker 1 failed at step 0: out of memory"), e.getMessage());
      assertFalse(assertThrows(ParameterServerException.class, server::checkHealthy).permanent());
    }
  }

  @Test
  void shouldSayAWorkersFailureIsPermanentWhenTheWorkerSaysSo() throws Exception {
    final ServerAddress address = address(Transport.IPC, 2, 1000, 4096);
    try (ParameterServer server = launch(address, Duration.ofSeconds(60));
        GradientExchange failing = connect(address, 1)) {
      failing.abort(3, "labels out of range", true);
      final long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
      while (server.stepsCompleted() == 0 && System.nanoTime() < deadline) {
        try {
          server.checkHealthy();
          Thread.sleep(10);
        } catch (ParameterServerException e) {
          assertTrue(e.permanent(), e.getMessage());
          assertTrue(e.getMessage().contains("labels out of range"), e.getMessage());
          return;
        }
      }
      throw new AssertionError("the server did not take the abort");
    }
  }

  @Test
  void shouldRejectAChunkSizeAboveAeronsLargestMessage() {
    final IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class, () -> address(Transport.IPC, 2, 1000, 4 << 20));
    assertTrue(e.getMessage().contains("unfragmented Aeron frame"), e.getMessage());
  }
}
