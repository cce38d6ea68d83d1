package io.lockstep.ps;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.aeron.Aeron;
import io.aeron.ExclusivePublication;
import io.lockstep.conf.Compression;
import io.lockstep.conf.Transport;
import io.lockstep.protocol.ChunkCodec;
import io.lockstep.protocol.Frame;
import io.lockstep.protocol.FrameKey;
import io.lockstep.protocol.FramePublisher;
import io.lockstep.protocol.ServerAddress;
import io.lockstep.protocol.ServerShards;
import io.lockstep.protocol.SharedGradients;
import io.lockstep.ps.client.GradientExchange;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.UUID;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.agrona.BufferUtil;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Gradients through shared memory ({@link SharedGradients}) against real media drivers: the same
 * bits as through frames, in rank order, whole or overlapped, one shard or several; the file is the
 * job's user's alone and goes with the server.
 */
@Timeout(120)
class SharedGradientsTest {
  private static final int PARAMETERS = 100_003;
  private static final int CHUNK_BYTES = 4096;
  private static final int STEPS = 4;

  private final ExecutorService threads = Executors.newCachedThreadPool();

  @AfterEach
  void stopThreads() {
    threads.shutdownNow();
  }

  private static ServerShards shards(int workers, int shards, FrameKey key) {
    return ServerShards.split(
        new ServerAddress(
            Transport.IPC,
            "/dev/shm/lockstep-test-" + UUID.randomUUID(),
            "127.0.0.1",
            0,
            1 << 20,
            CHUNK_BYTES,
            0x5A4ED,
            workers,
            PARAMETERS,
            key),
        shards);
  }

  /** Rank r's step-s gradient: values of every magnitude, so that the order of additions shows. */
  private static float[] gradient(int rank, int step) {
    final SplittableRandom random = new SplittableRandom(rank * 1_000L + step);
    final float[] g = new float[PARAMETERS];
    for (int i = 0; i < g.length; i++) {
      g[i] = (float) (random.nextGaussian() * Math.pow(10, random.nextInt(-6, 6)));
    }
    return g;
  }

  /** Each rank's last answer after {@link #STEPS} steps, overlapped or whole. */
  private List<float[]> run(ServerShards shards, Compression compression, boolean overlap)
      throws Exception {
    try (ParameterServer server =
        ParameterServer.launch(
            new ParameterServer.Context().shards(shards).stepTimeout(Duration.ofSeconds(30)))) {
      final List<Future<float[]>> ranks = new ArrayList<>();
      for (int r = 0; r < shards.workers(); r++) {
        final int rank = r;
        ranks.add(threads.submit(() -> work(shards, rank, compression, overlap)));
      }
      final List<float[]> answers = new ArrayList<>();
      for (Future<float[]> rank : ranks) {
        answers.add(rank.get());
      }
      server.checkHealthy();
      return answers;
    }
  }

  private static float[] work(
      ServerShards shards, int rank, Compression compression, boolean overlap) {
    final UnsafeBuffer vector =
        new UnsafeBuffer(BufferUtil.allocateDirectAligned(PARAMETERS * Float.BYTES, 64));
    try (GradientExchange exchange =
        GradientExchange.connect(
            new GradientExchange.Context()
                .shards(shards)
                .rank(rank)
                .stepTimeout(Duration.ofSeconds(30))
                .connectTimeout(Duration.ofSeconds(30))
                .compression(compression, 1, 1))) {
      assertEquals(
          SharedGradients.carries(shards.shard(0)) && compression == Compression.NONE,
          exchange.sharesGradients());
      for (int step = 0; step < STEPS; step++) {
        final float[] g = gradient(rank, step);
        if (overlap) {
          exchange.begin(step, vector, 1, false);
          // the vector is written back to front, as a backward pass does, and declared final
          for (int from = PARAMETERS; from > 0; from = Math.max(0, from - 7_919)) {
            for (int i = Math.max(0, from - 7_919); i < from; i++) {
              vector.putFloat(i * Float.BYTES, g[i]);
            }
            exchange.ready(Math.max(0, from - 7_919));
          }
          assertEquals(shards.workers(), exchange.finish());
        } else {
          for (int i = 0; i < PARAMETERS; i++) {
            vector.putFloat(i * Float.BYTES, g[i]);
          }
          assertEquals(shards.workers(), exchange.exchange(step, vector, 1));
        }
      }
    }
    final float[] answer = new float[PARAMETERS];
    for (int i = 0; i < PARAMETERS; i++) {
      answer[i] = vector.getFloat(i * Float.BYTES);
    }
    return answer;
  }

  /** The last step's sum as the server adds it: ((g0 + g1) + g2) + ..., in float. */
  private static float[] expected(int workers) {
    final float[] sum = gradient(0, STEPS - 1);
    for (int rank = 1; rank < workers; rank++) {
      final float[] g = gradient(rank, STEPS - 1);
      for (int i = 0; i < PARAMETERS; i++) {
        sum[i] += g[i];
      }
    }
    return sum;
  }

  @Test
  void shouldCarryUntaggedIpcGradientsOnlyToASynchronousServer() {
    final ServerAddress untagged = shards(2, 1, FrameKey.none()).shard(0);

    assertTrue(SharedGradients.carries(untagged));
    assertFalse(SharedGradients.carries(shards(2, 1, FrameKey.random()).shard(0)));
    assertFalse(SharedGradients.carries(untagged.withMode(io.lockstep.conf.SyncMode.ASYNC, 0)));
  }

  @Test
  void shouldSumInRankOrderToTheBitsOfFramesWithOneShardOrThree() throws Exception {
    for (int count : new int[] {1, 3}) {
      final List<float[]> shared = run(shards(3, count, FrameKey.none()), Compression.NONE, false);
      final List<float[]> framed =
          run(shards(3, count, FrameKey.random()), Compression.NONE, false);

      for (int rank = 0; rank < 3; rank++) {
        assertArrayEquals(expected(3), shared.get(rank), "shards " + count + " rank " + rank);
        assertArrayEquals(framed.get(rank), shared.get(rank), "shards " + count + " rank " + rank);
      }
    }
  }

  @Test
  void shouldSumOverlappedStepsAsWholeOnes() throws Exception {
    final List<float[]> overlapped = run(shards(2, 2, FrameKey.none()), Compression.NONE, true);

    for (float[] answer : overlapped) {
      assertArrayEquals(expected(2), answer);
    }
  }

  @Test
  void shouldTakeCompressedFramesBesideSharedMemory() throws Exception {
    // a worker that compresses sends frames; the server shares its memory all the same
    final List<float[]> bf16 = run(shards(2, 1, FrameKey.none()), Compression.BF16, false);

    final float[] want = expected(2);
    for (float[] answer : bf16) {
      for (int i = 0; i < PARAMETERS; i += 997) {
        assertEquals(want[i], answer[i], Math.abs(want[i]) * 0.02f + 1e-6f, "float " + i);
      }
    }
  }

  @Test
  void shouldRejectAChunkSaidToBeInSharedMemoryByAServerThatSharesNone() throws Exception {
    // tagged: the server shares no memory, and a frame signed with the job's key that points into
    // it is dropped and counted, never summed
    final ServerShards shards = shards(2, 1, FrameKey.random());
    final ServerAddress address = shards.shard(0);
    try (ParameterServer server =
            ParameterServer.launch(
                new ParameterServer.Context().shards(shards).stepTimeout(Duration.ofSeconds(30)));
        Aeron aeron =
            Aeron.connect(new Aeron.Context().aeronDirectoryName(address.aeronDirectory()));
        ExclusivePublication raw =
            aeron.addExclusivePublication(address.gradientChannel(), address.gradientStreamId())) {
      final FramePublisher forger = ParameterServerTest.rawPublisher(raw, address.key(), "forger");
      Frame.encode(
          forger.header(),
          Frame.TYPE_GRADIENT,
          1,
          address.jobId(),
          0,
          address.layout().chunkSentAt(0),
          address.layout().chunkCount(),
          1,
          0,
          PARAMETERS);
      Frame.encodingAndFlags(forger.header(), ChunkCodec.SHARED, (byte) 0);
      forger.send(new UnsafeBuffer(new byte[0]), 0, 0, 0);
      final long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
      while (server.rejectedFrames() == 0 && System.nanoTime() < deadline) {
        Thread.onSpinWait();
      }

      assertEquals(1, server.rejectedFrames());
      server.checkHealthy();
    }
  }

  @Test
  void shouldKeepTheFileToItsUserAndRemoveItWithTheServer() throws Exception {
    final ServerShards shards = shards(2, 1, FrameKey.none());
    final Path file = Path.of(shards.shard(0).aeronDirectory(), SharedGradients.FILE_NAME);
    try (ParameterServer server =
        ParameterServer.launch(
            new ParameterServer.Context().shards(shards).stepTimeout(Duration.ofSeconds(30)))) {
      assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(file)));
      assertEquals(3L * PARAMETERS * Float.BYTES, Files.size(file));
    }

    assertFalse(Files.exists(file));
  }
}
