package io.lockstep.ps;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.lockstep.conf.Compression;
import io.lockstep.conf.Transport;
import io.lockstep.protocol.ChunkCodec;
import io.lockstep.protocol.ChunkLayout;
import io.lockstep.protocol.FrameKey;
import io.lockstep.protocol.ServerAddress;
import io.lockstep.ps.client.GradientEncoder;
import io.lockstep.ps.client.GradientExchange;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.UUID;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Chunk encodings: the codecs alone, the error feedback, and workers through a real server. */
@Timeout(120)
class CompressionTest {
  private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
  private final ExecutorService threads = Executors.newCachedThreadPool();

  @AfterEach
  void stopThreads() {
    threads.shutdownNow();
  }

  @Test
  void halfPrecisionRoundTripsEveryHalfAndRoundsToTheNearest() {
    for (int bits = 0; bits < 1 << 16; bits++) {
      final float value = ChunkCodec.halfToFloat((short) bits);
      if (!Float.isNaN(value)) {
        assertEquals((short) bits, ChunkCodec.floatToHalf(value), "half 0x" + bits);
      }
    }
    final Random random = new Random(7);
    for (int i = 0; i < 200_000; i++) {
      final float x = (float) (random.nextGaussian() * Math.pow(2, random.nextInt(40) - 28));
      final short h = ChunkCodec.floatToHalf(x);
      final float error = Math.abs(x - ChunkCodec.halfToFloat(h));
      for (int neighbour : new int[] {h - 1, h + 1}) {
        final float other = ChunkCodec.halfToFloat((short) neighbour);
        if (Float.isFinite(other) && Math.signum(other) == Math.signum(x)) {
          assertTrue(error <= Math.abs(x - other), x + " rounded to " + h);
        }
      }
    }
    // Ties go to the even neighbour: 1 + 2^-11 lies halfway between 1 and 1 + 2^-10.
    assertEquals(1f, ChunkCodec.halfToFloat(ChunkCodec.floatToHalf(1f + 0x1p-11f)));
    assertEquals(65504f, ChunkCodec.halfToFloat(ChunkCodec.floatToHalf(65519f)));
    assertEquals(Float.POSITIVE_INFINITY, ChunkCodec.halfToFloat(ChunkCodec.floatToHalf(65520f)));
    assertTrue(Float.isNaN(ChunkCodec.halfToFloat(ChunkCodec.floatToHalf(Float.NaN))));
  }

  @Test
  void bfloat16RoundsToNearestEven() {
    assertEquals(1f, bf16(1f + 0x1p-8f));
    assertEquals(1f + 0x1p-6f, bf16(1f + 0x1p-6f + 0x1p-8f));
    assertEquals(-3.140625f, bf16(-3.14159f));
    assertTrue(Float.isNaN(bf16(Float.NaN)));
  }

  private static float bf16(float x) {
    return Float.intBitsToFloat(ChunkCodec.floatToBfloat16(x) << 16);
  }

  @Test
  void scaledHalfPrecisionKeepsLargeAndSmallChunks() {
    final UnsafeBuffer out = new UnsafeBuffer(new byte[ChunkCodec.maxLength(4)]);
    for (float scale : new float[] {1e-9f, 1f, 3e5f, 1e30f}) {
      final float[] values = {scale, -0.5f * scale, 1e-3f * scale, 0};
      final int length = ChunkCodec.encodeF16(values, 4, out, 0);
      assertNull(ChunkCodec.problem(ChunkCodec.F16, out, 0, length, 4));
      final float[] decoded = new float[4];
      ChunkCodec.add(ChunkCodec.F16, out, 0, length, decoded, 0, 4);
      for (int i = 0; i < 4; i++) {
        assertEquals(values[i], decoded[i], scale * 0x1p-11f, "at scale " + scale);
      }
    }
  }

  @Test
  void sparseChunksRoundTripAndBadOnesAreNamed() {
    final float[] values = new float[100];
    values[3] = 1.5f;
    values[40] = -2f;
    values[99] = 7f;
    final UnsafeBuffer out = new UnsafeBuffer(new byte[ChunkCodec.maxLength(100)]);
    final int length = ChunkCodec.encodeSparse(values, 100, out, 0);
    assertEquals(ChunkCodec.sparseLength(3), length);
    assertNull(ChunkCodec.problem(ChunkCodec.SPARSE, out, 0, length, 100));
    final UnsafeBuffer decoded = new UnsafeBuffer(new byte[400]);
    decoded.setMemory(0, 400, (byte) 0x7F);
    ChunkCodec.decode(ChunkCodec.SPARSE, out, 0, length, decoded, 0, 100);
    for (int i = 0; i < 100; i++) {
      assertEquals(values[i], decoded.getFloat(4 * i, LE));
    }
    assertNotNull(ChunkCodec.problem(ChunkCodec.SPARSE, out, 0, length, 99), "offset 99 of 99");
    assertNotNull(ChunkCodec.problem(ChunkCodec.SPARSE, out, 0, length - 1, 100));
    out.putShort(2, (short) 3, LE);
    assertNotNull(ChunkCodec.problem(ChunkCodec.SPARSE, out, 0, length, 100), "repeated offset");
    assertNotNull(ChunkCodec.problem((byte) 9, out, 0, length, 100));
    final float[] dense = new float[10];
    java.util.Arrays.fill(dense, 1f);
    assertEquals(-1, ChunkCodec.encodeSparse(dense, 10, out, 0), "no shorter than float32");
  }

  @Test
  void topKSendsTheLargestAndFeedsTheRestBack() {
    final ChunkLayout layout = new ChunkLayout(1000, 250);
    final GradientEncoder encoder = new GradientEncoder(Compression.TOP_K, 0.1, 1, layout);
    final Random random = new Random(3);
    final double[] total = new double[1000];
    final double[] sent = new double[1000];
    for (int step = 0; step < 20; step++) {
      final float[] g = new float[1000];
      for (int i = 0; i < g.length; i++) {
        g[i] = (float) random.nextGaussian();
        total[i] += g[i];
      }
      final UnsafeBuffer gradient = vector(g);
      for (int chunk = 0; chunk < 4; chunk++) {
        final int length = encoder.encode(gradient, 0, chunk, 8);
        assertEquals(ChunkCodec.SPARSE, encoder.encoding());
        assertEquals(25, ChunkCodec.sparseEntries(length), "ceil(0.1 x 250) of each chunk");
        final float[] values = new float[250];
        ChunkCodec.add(ChunkCodec.SPARSE, encoder.out(), 0, length, values, 0, 250);
        float smallestSent = Float.MAX_VALUE;
        for (int i = 0; i < 250; i++) {
          sent[chunk * 250 + i] += values[i];
          if (values[i] != 0) {
            smallestSent = Math.min(smallestSent, Math.abs(values[i]));
          }
        }
        assertTrue(smallestSent > 0);
      }
    }
    // What was sent plus what is still held back is everything: nothing is lost.
    final float[] residual = residualOf(encoder, layout);
    for (int i = 0; i < 1000; i++) {
      assertEquals(total[i], sent[i] + residual[i], 1e-4, "element " + i);
    }
  }

  /** The residual, read back by encoding a zero gradient with everything sent. */
  private static float[] residualOf(GradientEncoder encoder, ChunkLayout layout) {
    final float[] held = new float[layout.parameterCount()];
    final UnsafeBuffer zero = vector(new float[layout.parameterCount()]);
    for (int round = 0; round < 200; round++) {
      for (int chunk = 0; chunk < layout.chunkCount(); chunk++) {
        final int length = encoder.encode(zero, 0, chunk, 8);
        final float[] values = new float[layout.lengthBytes(chunk) / 4];
        ChunkCodec.add(encoder.encoding(), encoder.out(), 0, length, values, 0, values.length);
        for (int i = 0; i < values.length; i++) {
          held[chunk * layout.chunkFloats() + i] += values[i];
        }
      }
    }
    return held;
  }

  @Test
  void thresholdSendsWhatReachesItPerSample() {
    final ChunkLayout layout = new ChunkLayout(4, 4);
    final GradientEncoder encoder = new GradientEncoder(Compression.THRESHOLD, 1, 0.5, layout);
    // 4 samples: the limit is 2.
    int length = encoder.encode(vector(new float[] {3f, 1f, -2f, 0.5f}), 0, 0, 4);
    float[] values = new float[4];
    ChunkCodec.add(encoder.encoding(), encoder.out(), 0, length, values, 0, 4);
    assertArrayEquals(new float[] {3f, 0, -2f, 0}, values);
    length = encoder.encode(vector(new float[] {0, 1f, 0, 0}), 0, 0, 4);
    values = new float[4];
    ChunkCodec.add(encoder.encoding(), encoder.out(), 0, length, values, 0, 4);
    assertArrayEquals(new float[] {0, 2f, 0, 0}, values, "1 + the residual 1 reaches 2");
  }

  /** Every worker gets the same result, and it is the sum of what was sent. */
  @ParameterizedTest
  @EnumSource(
      value = Compression.class,
      names = {"FP16", "BF16", "TOP_K", "THRESHOLD"})
  void shouldGiveEveryWorkerTheSameSumOfTheEncodedChunks(Compression compression) throws Exception {
    final int workers = 3;
    final int parameters = 5000;
    final ServerAddress address =
        new ServerAddress(
            Transport.IPC,
            "/dev/shm/lockstep-test-" + UUID.randomUUID(),
            "127.0.0.1",
            40000,
            1 << 20,
            4096,
            0xC0DE,
            workers,
            parameters,
            FrameKey.random());
    try (ParameterServer server =
        ParameterServer.launch(
            new ParameterServer.Context().address(address).stepTimeout(Duration.ofSeconds(30)))) {
      final List<Future<float[][]>> results = new ArrayList<>();
      for (int rank = 0; rank < workers; rank++) {
        final int r = rank;
        results.add(
            threads.submit(
                () -> {
                  try (GradientExchange exchange =
                      GradientExchange.connect(
                          new GradientExchange.Context()
                              .address(address)
                              .rank(r)
                              .compression(compression, 0.05, 0.01)
                              .stepTimeout(Duration.ofSeconds(30))
                              .connectTimeout(Duration.ofSeconds(30)))) {
                    final float[][] out = new float[4][];
                    for (int step = 0; step < out.length; step++) {
                      final UnsafeBuffer buffer = vector(gradient(r, step, parameters));
                      assertEquals(3 * 8, exchange.exchange(step, buffer, 8));
                      out[step] = floats(buffer);
                    }
                    return out;
                  }
                }));
      }
      final List<float[][]> all = new ArrayList<>();
      for (Future<float[][]> f : results) {
        all.add(f.get());
      }
      for (int rank = 1; rank < workers; rank++) {
        for (int step = 0; step < 4; step++) {
          assertArrayEquals(all.get(0)[step], all.get(rank)[step], "rank " + rank + " " + step);
        }
      }
      final float[] last = all.get(0)[3];
      final float[] exact = new float[parameters];
      final float[] magnitude = new float[parameters];
      for (int r = 0; r < workers; r++) {
        final float[] g = gradient(r, 3, parameters);
        for (int i = 0; i < parameters; i++) {
          exact[i] += g[i];
          magnitude[i] += Math.abs(g[i]);
        }
      }
      // Each worker's value and the sum are rounded once each: 2^-11 (fp16), 2^-8 (bf16).
      final float precision = compression == Compression.FP16 ? 0x1p-9f : 0x1p-6f;
      int nonZero = 0;
      for (int i = 0; i < parameters; i++) {
        if (last[i] != 0) {
          nonZero++;
        }
        if (compression == Compression.FP16 || compression == Compression.BF16) {
          assertEquals(exact[i], last[i], magnitude[i] * precision, "element " + i);
        }
      }
      if (compression == Compression.TOP_K) {
        // Each worker sends ceil(5% of 1024) of each chunk; three workers at most three times that.
        assertTrue(nonZero > 0 && nonZero <= 3 * 52 * 5, nonZero + " elements in the sum");
      }
      assertEquals(0, server.rejectedFrames());
    }
  }

  private static float[] gradient(int rank, int step, int parameters) {
    final Random random = new Random(31L * rank + step);
    final float[] g = new float[parameters];
    for (int i = 0; i < parameters; i++) {
      g[i] = (float) (random.nextGaussian() * (i % 10 == 0 ? 2 : 0.01));
    }
    return g;
  }

  private static UnsafeBuffer vector(float[] values) {
    final ByteBuffer bytes = ByteBuffer.allocateDirect(values.length * Float.BYTES).order(LE);
    bytes.asFloatBuffer().put(values);
    return new UnsafeBuffer(bytes);
  }

  private static float[] floats(UnsafeBuffer buffer) {
    final float[] values = new float[buffer.capacity() / Float.BYTES];
    for (int i = 0; i < values.length; i++) {
      values[i] = buffer.getFloat(i * Float.BYTES, LE);
    }
    return values;
  }
}
