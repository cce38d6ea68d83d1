package io.lockstep.cuda.check;

import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Keys;
import io.lockstep.conf.Transport;
import io.lockstep.cuda.CudaDevice;
import io.lockstep.cuda.CudaEngine;
import io.lockstep.cuda.CudaException;
import io.lockstep.cuda.CudaLibraries;
import io.lockstep.cuda.Network;
import io.lockstep.cuda.Networks;
import io.lockstep.protocol.FrameKey;
import io.lockstep.protocol.ServerAddress;
import io.lockstep.protocol.ServerShards;
import io.lockstep.ps.ParameterServer;
import io.lockstep.ps.client.GradientExchange;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.zip.CRC32;
import org.agrona.concurrent.UnsafeBuffer;

/**
 * The GPU check's Java side ({@code bench/gpu-check.sh}): runs the CUDA engine on fixed weights and
 * a fixed batch and writes what a PyTorch script compares against its own model on the same GPU.
 *
 * <pre>
 * GpuCheck libraries
 *     loads the CUDA libraries and opens device 0: what a node without them fails on
 * GpuCheck gradients NETWORK BATCH SEED DIR WINDOWS STEPS
 *     writes DIR/network.json, parameters.bin, images.bin, labels.bin (the inputs), loss.txt and
 *     gradients.bin (one forward and backward pass), then times WINDOWS windows of STEPS full steps
 *     (forward, backward, SGD with momentum) and writes each window's images/s to engine.txt
 * GpuCheck workers NETWORK WORKERS BATCH STEPS SEED
 *     trains WORKERS engines on the one GPU, each on its slice of every batch, synchronized through
 *     a real parameter server (Aeron, IPC); prints every worker's final parameters' CRC-32
 * </pre>
 *
 * Every binary file is little-endian float32 (labels int32).
 */
public final class GpuCheck {
  private static final ByteOrder ORDER = ByteOrder.LITTLE_ENDIAN;
  private static final float LEARNING_RATE = 0.01f;
  private static final float MOMENTUM = 0.9f;

  private GpuCheck() {}

  /**
   * @param args as the class comment says
   * @throws Exception when a step fails; the exit code is then 1
   */
  public static void main(String[] args) throws Exception {
    try {
      run(args);
    } catch (CudaException | IllegalArgumentException | IllegalStateException e) {
      System.err.println("gpu-check: " + e.getMessage());
      System.exit(1);
    }
  }

  private static void run(String[] args) throws Exception {
    if (args.length == 0) {
      throw usage();
    }
    switch (args[0]) {
      case "libraries" -> libraries();
      case "gradients" -> {
        expect(args, 7);
        gradients(
            Networks.named(args[1]),
            Integer.parseInt(args[2]),
            Long.parseLong(args[3]),
            Path.of(args[4]),
            Integer.parseInt(args[5]),
            Integer.parseInt(args[6]));
      }
      case "workers" -> {
        expect(args, 6);
        workers(
            Networks.named(args[1]),
            Integer.parseInt(args[2]),
            Integer.parseInt(args[3]),
            Integer.parseInt(args[4]),
            Long.parseLong(args[5]));
      }
      default -> throw usage();
    }
  }

  private static void libraries() {
    for (String library : CudaLibraries.load()) {
      System.out.println("library " + library);
    }
    System.out.println("versions " + CudaLibraries.versions());
    final CudaDevice device = CudaDevice.open(0);
    System.out.println(
        "device " + device.name() + " (compute capability " + device.computeCapability() + ")");
  }

  private static void gradients(
      Network network, int batch, long seed, Path dir, int windows, int steps) throws IOException {
    Files.createDirectories(dir);
    final CudaDevice device = CudaDevice.open(0);
    final float[] parameters = network.initialParameters(seed);
    final Batch data = Batch.random(network, batch, seed + 1);
    Files.writeString(dir.resolve("network.json"), network.toJson());
    write(dir.resolve("parameters.bin"), parameters);
    write(dir.resolve("images.bin"), data.images());
    writeInts(dir.resolve("labels.bin"), data.labels());
    final long built = System.nanoTime();
    try (CudaEngine engine = new CudaEngine(network, batch, device)) {
      System.out.printf(
          Locale.ROOT,
          "engine built for %s, batch %d, on %s in %.2f s%n",
          args(network),
          batch,
          device.name(),
          (System.nanoTime() - built) / 1e9);
      for (String algorithm : engine.algorithms()) {
        System.out.println("  " + algorithm);
      }
      engine.setParameters(parameters);
      engine.setBatch(data.images(), data.labels());
      engine.forwardBackward();
      final float loss = engine.loss();
      Files.writeString(dir.resolve("loss.txt"), Float.toString(loss) + "\n");
      write(dir.resolve("gradients.bin"), engine.gradients());
      System.out.printf(Locale.ROOT, "loss %.6f%n", loss);

      final StringBuilder timing = new StringBuilder();
      for (int w = 0; w < windows; w++) {
        engine.synchronize();
        final long start = System.nanoTime();
        for (int s = 0; s < steps; s++) {
          engine.forwardBackward();
          engine.step(LEARNING_RATE, MOMENTUM, 0f, 1f);
        }
        engine.synchronize();
        final double seconds = (System.nanoTime() - start) / 1e9;
        timing.append(String.format(Locale.ROOT, "%.1f%n", (double) batch * steps / seconds));
      }
      Files.writeString(dir.resolve("engine.txt"), timing.toString());
      final StringBuilder profile =
          new StringBuilder("engine profile, ms per step (each action waited for):");
      engine
          .profile(Math.max(1, steps / 10))
          .forEach(
              (label, ms) ->
                  profile.append(String.format(Locale.ROOT, "%n  %-24s %8.3f", label, ms)));
      System.out.println(profile);
      System.out.print("engine images/s per window:\n" + timing);
    }
  }

  private static void workers(Network network, int workers, int batch, int steps, long seed)
      throws Exception {
    if (batch % workers != 0) {
      throw new IllegalArgumentException(
          "batch " + batch + " does not split into " + workers + " equal slices");
    }
    final CudaDevice device = CudaDevice.open(0);
    final int slice = batch / workers;
    final long term = Keys.PS_TERM_LENGTH.defaultOf();
    final Path aeron =
        Files.isWritable(Path.of("/dev/shm"))
            ? Path.of("/dev/shm")
            : Path.of(System.getProperty("java.io.tmpdir"));
    final ServerAddress address =
        new ServerAddress(
            Transport.IPC,
            aeron.resolve("lockstep-gpu-check-" + UUID.randomUUID()).toString(),
            "127.0.0.1",
            42000 + new SplittableRandom().nextInt(4000) * 2,
            (int) term,
            (int) JobConfig.largestChunkBytes(term),
            0x6C0C5,
            workers,
            network.parameterCount(),
            FrameKey.none());
    final ServerShards shards = ServerShards.of(address);
    final float[] initial = network.initialParameters(seed);
    final ExecutorService threads = Executors.newFixedThreadPool(workers);
    final long start = System.nanoTime();
    try (ParameterServer server =
        ParameterServer.launch(
            new ParameterServer.Context().shards(shards).stepTimeout(Duration.ofSeconds(60)))) {
      final List<Future<String>> results = new ArrayList<>();
      for (int r = 0; r < workers; r++) {
        final int rank = r;
        results.add(
            threads.submit(
                () -> worker(network, device, shards, initial, rank, workers, slice, steps, seed)));
      }
      final List<String> crcs = new ArrayList<>();
      for (Future<String> result : results) {
        try {
          crcs.add(result.get());
        } catch (ExecutionException e) {
          if (e.getCause() instanceof RuntimeException cause) {
            throw cause;
          }
          throw e;
        }
      }
      server.checkHealthy();
      System.out.printf(
          Locale.ROOT,
          "workers %d on one GPU, %s, batch %d (%d each), %d steps in %.2f s%n",
          workers,
          args(network),
          batch,
          slice,
          steps,
          (System.nanoTime() - start) / 1e9);
      for (int r = 0; r < workers; r++) {
        System.out.println("rank " + r + " " + crcs.get(r));
      }
      if (crcs.stream().map(c -> c.substring(0, c.indexOf(' '))).distinct().count() != 1) {
        throw new IllegalStateException("the workers' parameters differ after " + steps + " steps");
      }
    } finally {
      threads.shutdownNow();
      threads.awaitTermination(10, TimeUnit.SECONDS);
    }
  }

  /** One worker's steps; returns its parameters' CRC-32 and last loss. */
  private static String worker(
      Network network,
      CudaDevice device,
      ServerShards shards,
      float[] initial,
      int rank,
      int workers,
      int slice,
      int steps,
      long seed) {
    device.makeCurrent();
    try (CudaEngine engine = new CudaEngine(network, slice, device);
        GradientExchange exchange =
            GradientExchange.connect(
                new GradientExchange.Context()
                    .shards(shards)
                    .rank(rank)
                    .workerHost("127.0.0.1")
                    .stepTimeout(Duration.ofSeconds(60))
                    .connectTimeout(Duration.ofSeconds(60)))) {
      engine.setParameters(initial);
      UnsafeBuffer gradient = null;
      float loss = Float.NaN;
      for (int step = 0; step < steps; step++) {
        final Batch whole = Batch.random(network, slice * workers, seed + 1000 + step);
        final Batch mine = whole.slice(rank * slice, slice, network);
        engine.setBatch(mine.images(), mine.labels());
        engine.forwardBackward();
        loss = engine.loss();
        final long host = engine.gradientsToHost();
        if (gradient == null) {
          gradient = new UnsafeBuffer(host, network.parameterCount() * Float.BYTES);
        }
        exchange.exchange(step, gradient, slice);
        engine.gradientsFromHost();
        engine.step(LEARNING_RATE, MOMENTUM, 0f, 1f / workers);
      }
      final float[] parameters = engine.parameters();
      return String.format(Locale.ROOT, "%08x loss %.6f", crc(parameters), loss);
    }
  }

  /** A batch of standard-normal images and uniform labels. */
  record Batch(float[] images, int[] labels) {
    static Batch random(Network network, int batch, long seed) {
      final SplittableRandom random = new SplittableRandom(seed);
      final float[] images =
          new float[batch * network.channels() * network.height() * network.width()];
      for (int i = 0; i < images.length; i++) {
        images[i] = (float) gaussian(random);
      }
      final int[] labels = new int[batch];
      for (int i = 0; i < batch; i++) {
        labels[i] = random.nextInt(network.classes());
      }
      return new Batch(images, labels);
    }

    Batch slice(int first, int count, Network network) {
      final int size = network.channels() * network.height() * network.width();
      return new Batch(
          Arrays.copyOfRange(images, first * size, (first + count) * size),
          Arrays.copyOfRange(labels, first, first + count));
    }

    private static double gaussian(SplittableRandom random) {
      final double u = random.nextDouble();
      final double v = random.nextDouble();
      return Math.sqrt(-2 * Math.log(1 - u)) * Math.cos(2 * Math.PI * v);
    }
  }

  static long crc(float[] values) {
    final ByteBuffer bytes = ByteBuffer.allocate(values.length * Float.BYTES).order(ORDER);
    bytes.asFloatBuffer().put(values);
    final CRC32 crc = new CRC32();
    crc.update(bytes.array());
    return crc.getValue();
  }

  private static void write(Path file, float[] values) throws IOException {
    final ByteBuffer bytes = ByteBuffer.allocate(values.length * Float.BYTES).order(ORDER);
    bytes.asFloatBuffer().put(values);
    Files.write(file, bytes.array());
  }

  private static void writeInts(Path file, int[] values) throws IOException {
    final ByteBuffer bytes = ByteBuffer.allocate(values.length * Integer.BYTES).order(ORDER);
    bytes.asIntBuffer().put(values);
    Files.write(file, bytes.array());
  }

  private static String args(Network network) {
    return network.nodes().size() + " nodes, " + network.parameterCount() + " parameters";
  }

  private static void expect(String[] args, int count) {
    if (args.length != count) {
      throw usage();
    }
  }

  private static IllegalArgumentException usage() {
    return new IllegalArgumentException(
        "usage: GpuCheck libraries | gradients NETWORK BATCH SEED DIR WINDOWS STEPS"
            + " | workers NETWORK WORKERS BATCH STEPS SEED (networks: "
            + String.join(", ", Networks.NAMES)
            + ")");
  }
}
