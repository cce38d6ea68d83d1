package io.lockstep.it;

import io.lockstep.conf.Compression;
import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Transport;
import io.lockstep.protocol.FrameKey;
import io.lockstep.protocol.ServerAddress;
import io.lockstep.protocol.ServerShards;
import io.lockstep.ps.ParameterServer;
import io.lockstep.ps.RemoteShards;
import io.lockstep.ps.RunningServer;
import io.lockstep.ps.client.GradientExchange;
import java.io.IOException;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.agrona.BufferUtil;
import org.agrona.concurrent.UnsafeBuffer;

/**
 * One synchronization of a flat gradient across hosts, with no training around it: {@code bench
 * sync}'s measurement split over processes, so that the gradient can be as large as a real model's
 * while the wire, not the compute of six hosts on two cores, sets the time. A {@code server}
 * process on the driver's host configures the shard processes of {@code lockstep.ps.shard-servers}
 * (or serves the job itself, over UDP on its address) and writes the job's shards to a file; a
 * {@code worker} process per host reads them, exchanges a vector of ones {@code iterations} times,
 * checks each sum and writes its per-iteration times. Started by {@link ScalingBench} in {@link
 * Hosts}; the files live on the filesystem the hosts share.
 *
 * <pre>
 * server SHARDS_FILE DONE_DIR ADDRESS PARAMS WORKERS SECRET_FILE [SHARD_SERVER...]
 * worker SHARDS_FILE TIMES_FILE ADDRESS RANK ITERATIONS COMPRESSION
 * </pre>
 */
final class ScalingSync {
  /** The job's Aeron term length, as {@link ScalingBench}'s model takes it. */
  private static final int TERM_LENGTH_BYTES = (int) ScalingBench.TERM_LENGTH_BYTES;

  /** How long a process waits for another's file, a connection or a sum. */
  private static final Duration DEADLINE = Duration.ofMinutes(10);

  private static final ByteOrder ORDER = ByteOrder.LITTLE_ENDIAN;

  private ScalingSync() {}

  public static void main(String[] args) throws Exception {
    switch (args[0]) {
      case "server" ->
          serve(
              Path.of(args[1]),
              Path.of(args[2]),
              args[3],
              Integer.parseInt(args[4]),
              Integer.parseInt(args[5]),
              Path.of(args[6]),
              List.of(args).subList(7, args.length));
      case "worker" ->
          work(
              Path.of(args[1]),
              Path.of(args[2]),
              args[3],
              Integer.parseInt(args[4]),
              Integer.parseInt(args[5]),
              Compression.valueOf(args[6].toUpperCase(Locale.ROOT)));
      default -> throw new IllegalArgumentException(args[0] + ": expected server or worker");
    }
  }

  /**
   * Serves one job until every worker has written its times into {@code done}, then closes it
   * (which tells the shard processes the job is over).
   */
  static void serve(
      Path shardsFile,
      Path done,
      String host,
      int parameters,
      int workers,
      Path secretFile,
      List<String> shardServers)
      throws Exception {
    final long jobId = new SecureRandom().nextLong();
    final ServerAddress address =
        new ServerAddress(
            Transport.UDP,
            "/dev/shm/lockstep-scaling-" + Long.toHexString(jobId),
            host,
            40400,
            TERM_LENGTH_BYTES,
            (int) JobConfig.chunkBytesForMtu(ScalingBench.MTU, TERM_LENGTH_BYTES),
            jobId,
            workers,
            parameters,
            FrameKey.forJob(FrameKey.readSecret(secretFile, "the secret file"), jobId));
    try (RunningServer server =
        shardServers.isEmpty()
            ? ParameterServer.launch(
                new ParameterServer.Context()
                    .shards(ServerShards.split(address, 1))
                    .stepTimeout(DEADLINE))
            : RemoteShards.configure(
                new RemoteShards.Context()
                    .servers(shardServers)
                    .address(address)
                    .replyHost(host)
                    .stepTimeout(DEADLINE)
                    .connectTimeout(Duration.ofSeconds(60)))) {
      final Path written = shardsFile.resolveSibling(shardsFile.getFileName() + ".part");
      try (ObjectOutputStream out = new ObjectOutputStream(Files.newOutputStream(written))) {
        out.writeObject(server.shards());
      }
      Files.move(written, shardsFile, StandardCopyOption.ATOMIC_MOVE);
      final long deadline = System.nanoTime() + DEADLINE.toNanos();
      while (count(done) < workers) {
        server.checkHealthy();
        if (System.nanoTime() > deadline) {
          throw new IllegalStateException(
              "only " + count(done) + " of " + workers + " workers ended within " + DEADLINE);
        }
        Thread.sleep(100);
      }
      server.checkHealthy();
    }
  }

  /**
   * Exchanges a vector of ones {@code iterations} times as worker {@code rank}, checks that each
   * sum is the worker count, and writes each iteration's nanoseconds, one a line.
   */
  static void work(
      Path shardsFile, Path times, String host, int rank, int iterations, Compression compression)
      throws Exception {
    final ServerShards shards = awaitShards(shardsFile);
    final int bytes = shards.parameterCount() * Float.BYTES;
    final UnsafeBuffer gradient = new UnsafeBuffer(BufferUtil.allocateDirectAligned(bytes, 64));
    final long[] nanos = new long[iterations];
    try (GradientExchange exchange =
        GradientExchange.connect(
            new GradientExchange.Context()
                .shards(shards)
                .rank(rank)
                .workerHost(host)
                .stepTimeout(DEADLINE)
                .connectTimeout(Duration.ofSeconds(60))
                .compression(compression, 1, 1))) {
      for (int i = 0; i < iterations; i++) {
        for (int offset = 0; offset < bytes; offset += Float.BYTES) {
          gradient.putFloat(offset, 1f, ORDER);
        }
        final long start = System.nanoTime();
        exchange.exchange(i, gradient, 1);
        nanos[i] = System.nanoTime() - start;
        final float expected = shards.workers();
        for (int offset = 0; offset < bytes; offset += Float.BYTES) {
          if (gradient.getFloat(offset, ORDER) != expected) {
            throw new IllegalStateException(
                "worker "
                    + rank
                    + ": iteration "
                    + i
                    + " summed float "
                    + offset / Float.BYTES
                    + " to "
                    + gradient.getFloat(offset, ORDER)
                    + ", not "
                    + expected);
          }
        }
      }
    }
    final Path written = times.resolveSibling(times.getFileName() + ".part");
    Files.write(
        written, Arrays.stream(nanos).mapToObj(Long::toString).collect(Collectors.toList()));
    Files.move(written, times, StandardCopyOption.ATOMIC_MOVE);
  }

  /**
   * Each iteration's time as its slowest worker saw it, in milliseconds, from the workers' files.
   */
  static double[] slowest(List<Path> times) throws IOException {
    final List<long[]> workers = new ArrayList<>();
    for (Path file : times) {
      workers.add(Files.readAllLines(file).stream().mapToLong(Long::parseLong).toArray());
    }
    final double[] millis = new double[workers.get(0).length];
    for (int i = 0; i < millis.length; i++) {
      long slowest = 0;
      for (long[] worker : workers) {
        slowest = Math.max(slowest, worker[i]);
      }
      millis[i] = slowest / 1e6;
    }
    return millis;
  }

  private static ServerShards awaitShards(Path file) throws Exception {
    final long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
    while (!Files.exists(file)) {
      if (System.nanoTime() > deadline) {
        throw new IllegalStateException("no " + file + " from the server process in 90 s");
      }
      Thread.sleep(50);
    }
    try (ObjectInputStream in = new ObjectInputStream(Files.newInputStream(file))) {
      return (ServerShards) in.readObject();
    }
  }

  private static long count(Path folder) throws IOException {
    try (var files = Files.list(folder)) {
      return files.filter(f -> !f.getFileName().toString().endsWith(".part")).count();
    }
  }
}
