package io.lockstep.jobs;

import io.lockstep.conf.Compression;
import io.lockstep.conf.Transport;
import io.lockstep.protocol.FrameKey;
import io.lockstep.protocol.ServerAddress;
import io.lockstep.protocol.ServerShards;
import io.lockstep.ps.ParameterServer;
import io.lockstep.ps.client.GradientExchange;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.UUID;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.agrona.BufferUtil;
import org.agrona.concurrent.UnsafeBuffer;

/**
 * Times one synchronization of a flat gradient: N workers, on threads of this JVM, each send a
 * vector of ones through a real parameter server and wait for the sum. Measured as PyTorch's {@code
 * allreduce_bench.py} measures gloo: all workers start together, an iteration takes as long as its
 * slowest worker, and the result is checked.
 */
public final class SyncBenchmark {
  private static final ByteOrder ORDER = ByteOrder.LITTLE_ENDIAN;

  /**
   * What to time.
   *
   * @param parameters floats per gradient
   * @param workers workers (threads)
   * @param iterations timed iterations
   * @param warmup untimed iterations first
   * @param transport IPC or UDP on 127.0.0.1
   * @param chunkBytes payload of one chunk
   * @param termLengthBytes Aeron term length
   * @param shards parameter server shards, threads in the same JVM
   * @param compression the chunks' encoding: none, fp16 or bf16 (a vector of ones sums exactly in
   *     each; the sparse encodings need real gradients, see {@code bench/modes.sh})
   * @param frameTags whether frames carry an HMAC tag ({@code lockstep.ps.frame-tags})
   */
  public record Settings(
      int parameters,
      int workers,
      int iterations,
      int warmup,
      Transport transport,
      int chunkBytes,
      int termLengthBytes,
      int shards,
      Compression compression,
      boolean frameTags) {
    /** Checks the counts; the address checks the rest. */
    public Settings {
      if (parameters <= 0 || workers <= 0 || iterations <= 0 || warmup < 0) {
        throw new IllegalArgumentException(
            "--params, --workers and --iterations must be > 0 and --warmup >= 0; got "
                + parameters
                + ", "
                + workers
                + ", "
                + iterations
                + ", "
                + warmup);
      }
      if (compression != Compression.NONE
          && compression != Compression.FP16
          && compression != Compression.BF16) {
        throw new IllegalArgumentException(
            "--compression " + compression + ": expected none, fp16 or bf16");
      }
      ServerAddress whole;
      try {
        whole = address(transport, termLengthBytes, chunkBytes, workers, parameters, true);
      } catch (IllegalArgumentException e) {
        throw new IllegalArgumentException("--chunk-size/--term-length: " + e.getMessage(), e);
      }
      try {
        ServerShards.split(whole, shards);
      } catch (IllegalArgumentException e) {
        throw new IllegalArgumentException("--shards: " + e.getMessage(), e);
      }
    }

    /**
     * @return fresh shards for one run of these settings
     */
    ServerShards shardsFor() {
      return ServerShards.split(
          address(transport, termLengthBytes, chunkBytes, workers, parameters, frameTags), shards);
    }

    private static ServerAddress address(
        Transport transport,
        int termLengthBytes,
        int chunkBytes,
        int workers,
        int parameters,
        boolean frameTags) {
      return new ServerAddress(
          transport,
          "/dev/shm/lockstep-bench-" + UUID.randomUUID(),
          "127.0.0.1",
          42000 + (int) (Math.random() * 4000) * 2,
          termLengthBytes,
          chunkBytes,
          0xBE7C4,
          workers,
          parameters,
          frameTags ? FrameKey.random() : FrameKey.none());
    }
  }

  /**
   * Per-iteration times of a benchmark.
   *
   * @param settings what was timed
   * @param millis each timed iteration's slowest worker, in milliseconds
   */
  public record Result(Settings settings, double[] millis) {
    /**
     * @param quantile in [0, 1]
     * @return the nearest-rank quantile of the iteration times, in milliseconds
     */
    public double quantileMillis(double quantile) {
      final double[] sorted = millis.clone();
      Arrays.sort(sorted);
      final int index = (int) Math.ceil(quantile * sorted.length) - 1;
      return sorted[Math.max(0, Math.min(sorted.length - 1, index))];
    }

    /**
     * @return the median time, in milliseconds
     */
    public double medianMillis() {
      final double[] sorted = millis.clone();
      Arrays.sort(sorted);
      final int n = sorted.length;
      return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }

    /**
     * @return one line: sizes, where the workers run, median/min/p90/max and bandwidth
     */
    public String line() {
      final long bytes = (long) settings.parameters() * Float.BYTES;
      final double median = medianMillis();
      return String.format(
          Locale.ROOT,
          "sync lockstep workers=%d (threads in one JVM, server in the same JVM) params=%d"
              + " bytes=%d (%.2f MB) transport=%s shards=%d (threads) term_length=%d"
              + " chunk_bytes=%d compression=%s frame_tags=%s:"
              + " median_ms=%.3f min_ms=%.3f p90_ms=%.3f max_ms=%.3f GB/s=%.2f (n=%d)",
          settings.workers(),
          settings.parameters(),
          bytes,
          bytes / 1e6,
          settings.transport().name().toLowerCase(Locale.ROOT),
          settings.shards(),
          settings.termLengthBytes(),
          settings.chunkBytes(),
          settings.compression().name().toLowerCase(Locale.ROOT),
          settings.frameTags(),
          median,
          quantileMillis(0),
          quantileMillis(0.9),
          quantileMillis(1),
          bytes / (median / 1e3) / 1e9,
          millis.length);
    }
  }

  private SyncBenchmark() {}

  /**
   * Runs the benchmark.
   *
   * @param settings what to time
   * @return the timed iterations
   * @throws Exception when a worker fails or a sum is wrong
   */
  public static Result run(Settings settings) throws Exception {
    final ServerShards shards = settings.shardsFor();
    final int total = settings.warmup() + settings.iterations();
    final long[][] nanos = new long[settings.workers()][total];
    final CyclicBarrier start = new CyclicBarrier(settings.workers());
    final ExecutorService threads = Executors.newFixedThreadPool(settings.workers());
    try (ParameterServer server =
        ParameterServer.launch(
            new ParameterServer.Context().shards(shards).stepTimeout(Duration.ofSeconds(60)))) {
      final List<Future<?>> workers = new ArrayList<>();
      for (int r = 0; r < settings.workers(); r++) {
        final int rank = r;
        workers.add(
            threads.submit(
                () -> {
                  worker(shards, settings.compression(), rank, total, start, nanos[rank]);
                  return null;
                }));
      }
      for (Future<?> worker : workers) {
        worker.get();
      }
      server.checkHealthy();
    } finally {
      threads.shutdownNow();
      threads.awaitTermination(10, TimeUnit.SECONDS);
    }
    final double[] millis = new double[settings.iterations()];
    for (int i = 0; i < millis.length; i++) {
      long slowest = 0;
      for (long[] worker : nanos) {
        slowest = Math.max(slowest, worker[settings.warmup() + i]);
      }
      millis[i] = slowest / 1e6;
    }
    return new Result(settings, millis);
  }

  private static void worker(
      ServerShards address,
      Compression compression,
      int rank,
      int iterations,
      CyclicBarrier start,
      long[] nanos)
      throws Exception {
    final int bytes = address.parameterCount() * Float.BYTES;
    final UnsafeBuffer gradient = new UnsafeBuffer(BufferUtil.allocateDirectAligned(bytes, 64));
    try (GradientExchange exchange =
        GradientExchange.connect(
            new GradientExchange.Context()
                .shards(address)
                .rank(rank)
                .workerHost("127.0.0.1")
                .stepTimeout(Duration.ofSeconds(60))
                .connectTimeout(Duration.ofSeconds(60))
                .compression(compression, 1, 1))) {
      for (int i = 0; i < iterations; i++) {
        for (int offset = 0; offset < bytes; offset += Float.BYTES) {
          gradient.putFloat(offset, 1f, ORDER);
        }
        start.await();
        final long t0 = System.nanoTime();
        exchange.exchange(i, gradient, 1);
        nanos[i] = System.nanoTime() - t0;
        final float expected = address.workers();
        if (gradient.getFloat(0, ORDER) != expected
            || gradient.getFloat(bytes - Float.BYTES, ORDER) != expected) {
          throw new IllegalStateException(
              "worker " + rank + ": iteration " + i + " summed to the wrong value");
        }
      }
    }
  }
}
