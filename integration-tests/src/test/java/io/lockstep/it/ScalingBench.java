package io.lockstep.it;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Transport;
import io.lockstep.protocol.FrameKey;
import io.lockstep.protocol.ServerAddress;
import io.lockstep.protocol.ServerShards;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * The scaling model of {@code docs/scaling.md} against measurement, on links where the wire is the
 * bottleneck: six {@link Hosts} whose links are all shaped to one rate, a Spark master and the
 * driver on {@code h0}, a Spark worker on each of {@code h1} to {@code h3}, and shard processes on
 * {@code h4} and {@code h5}. For 2 and 3 workers, 1 and 2 shard hosts, compression {@code none} and
 * {@code fp16}, and overlap on and off, it runs {@code submit} and prints, per configuration, the
 * median synchronization time (send, wait and receive) and step time of the steps after the first
 * five, next to what the model predicts for them.
 *
 * <p>Run by {@code bench/scaling.sh [RATE] [STEPS] [JOB] [ONLY] [SUBMIT FLAGS...]}: {@code ONLY}
 * ({@code all}) keeps the configurations whose name ({@code n2-s1-none}: workers, shard hosts,
 * compression) is in its comma-separated list ({@code s0}: no shard process, the server in the
 * driver JVM on {@code h0}, for keys shard processes refuse, such as {@code
 * lockstep.ps.frame-tags=off}), and the flags go to every {@code submit}. A {@code JOB} of {@code
 * params=N} times the synchronization of an N-float gradient alone instead ({@link ScalingSync}),
 * with no Spark and no compute. Needs root, like the {@link Hosts} it makes, and removes them when
 * it ends.
 */
public final class ScalingBench {
  /** JOB's form that times the synchronization of a gradient of that many floats alone. */
  private static final String PARAMS = "params=";

  /** The iterations a synchronization alone leaves out of its medians. */
  private static final int WARMUP_ITERATIONS = 2;

  /** The steps each run leaves out of its medians: the first stage's warm-up. */
  private static final int WARMUP_STEPS = 5;

  /** A frame's header and Aeron's data header, before the payload. */
  static final int FRAME_HEADERS_BYTES = 64 + 32;

  /** Around each Aeron frame on the wire: UDP 8, IPv4 20, Ethernet 14 bytes. */
  static final int PACKET_HEADERS_BYTES = 8 + 20 + 14;

  /** Every link's MTU ({@link Hosts}). */
  static final int MTU = 1500;

  /** The job's Aeron term length (lockstep.ps.term-length's default). */
  static final long TERM_LENGTH_BYTES = 1 << 20;

  private ScalingBench() {}

  /** One configuration's figures, measured and modeled, in milliseconds. */
  record Row(
      int workers,
      int shards,
      String compression,
      boolean overlap,
      double syncMs,
      double syncModelMs,
      double stepMs,
      double stepModelMs,
      double computeMs) {
    String line() {
      return String.format(
          Locale.ROOT,
          "| %d | %d | %s | %s | %.1f | %.1f | %s | %.1f | %.1f | %.2f | %.1f |",
          workers,
          shards,
          compression,
          overlap ? "on" : "off",
          syncMs,
          syncModelMs,
          // the model hides the whole transfer behind the backward pass: no ratio to give
          syncModelMs > 0 ? String.format(Locale.ROOT, "%.2f", syncMs / syncModelMs) : "-",
          stepMs,
          stepModelMs,
          stepMs / stepModelMs,
          computeMs);
    }
  }

  /**
   * The bytes a range of a gradient puts on a link, one way, as the transport cuts it: chunks of
   * {@code chunkBytes / 4} floats, each chunk's payload (4 bytes a float, or for {@code fp16} a
   * 4-byte scale and 2 bytes a float) behind the frame and Aeron headers, aligned to Aeron's 32
   * bytes, in one UDP datagram.
   *
   * @param floats the range's floats
   * @param chunkBytes a float32 chunk's payload ({@code lockstep.ps.chunk-size}, or the MTU's)
   * @param compression {@code none} or {@code fp16}
   */
  static double wireBytes(long floats, long chunkBytes, String compression) {
    final long perChunk = chunkBytes / Float.BYTES;
    double bytes = 0;
    for (long from = 0; from < floats; from += perChunk) {
      final long n = Math.min(perChunk, floats - from);
      final long payload = compression.equals("fp16") ? 4 + 2 * n : 4 * n;
      bytes += (FRAME_HEADERS_BYTES + payload + 31) / 32 * 32 + PACKET_HEADERS_BYTES;
    }
    return bytes;
  }

  /**
   * The model's synchronization time, in milliseconds: a worker's link carries its whole gradient
   * each way, a shard's link its range from every worker each way, both directions at once (the
   * shards answer chunk by chunk while later chunks still arrive); the busiest link sets the time.
   * Shards take whole chunks, as {@code ServerShards.split} cuts them.
   *
   * @param bytesPerSecond every link's rate, each way
   */
  static double syncModelMs(
      long parameters, int workers, int shards, String compression, double bytesPerSecond) {
    final int chunkBytes = (int) JobConfig.chunkBytesForMtu(MTU, TERM_LENGTH_BYTES);
    final ServerShards split = split(parameters, workers, shards, chunkBytes);
    double busiest = wireBytes(parameters, chunkBytes, compression);
    for (int s = 0; s < shards; s++) {
      busiest =
          Math.max(
              busiest,
              workers * wireBytes(split.shard(s).parameterCount(), chunkBytes, compression));
    }
    return busiest / bytesPerSecond * 1e3;
  }

  /** The shards' ranges, as the driver cuts them for {@code lockstep.ps.shard-servers}. */
  static ServerShards split(long parameters, int workers, int shards, int chunkBytes) {
    final ServerAddress whole =
        new ServerAddress(
            Transport.UDP,
            "",
            "198.18.0.14",
            40300,
            (int) TERM_LENGTH_BYTES,
            chunkBytes,
            1,
            workers,
            Math.toIntExact(parameters),
            FrameKey.none());
    return ServerShards.split(whole, shards);
  }

  /** Parses {@code tc}'s rate: {@code 200mbit}, {@code 1gbit}, {@code 500kbit}. */
  static double bytesPerSecond(String rate) {
    final String r = rate.toLowerCase(Locale.ROOT);
    final double scale =
        r.endsWith("gbit") ? 1e9 : r.endsWith("mbit") ? 1e6 : r.endsWith("kbit") ? 1e3 : 0;
    if (scale == 0) {
      throw new IllegalArgumentException(rate + ": expected a rate like 200mbit or 1gbit");
    }
    return Double.parseDouble(r.replaceAll("[a-z]+$", "")) * scale / 8;
  }

  /**
   * One configuration of the hosts: workers, shard hosts (0: the server in the driver JVM on {@code
   * h0}) and compression.
   */
  record Configuration(int workers, int shards, String compression) {
    /** Its name, as {@code ONLY} lists it: {@code n2-s1-none}. */
    String name() {
      return String.format(Locale.ROOT, "n%d-s%d-%s", workers, shards, compression);
    }

    /**
     * Every configuration, in the tables' order: 1 and 2 shard hosts, or those named in {@code
     * only} (where 0 shard hosts may be named too).
     */
    static List<Configuration> all(List<String> only) {
      final List<Configuration> all = new ArrayList<>();
      for (int workers : new int[] {2, 3}) {
        for (int shards : only.isEmpty() ? new int[] {1, 2} : new int[] {0, 1, 2}) {
          for (String compression : List.of("none", "fp16")) {
            final Configuration c = new Configuration(workers, shards, compression);
            if (only.isEmpty() || only.contains(c.name())) {
              all.add(c);
            }
          }
        }
      }
      return all;
    }
  }

  /** A run's medians over its steps after {@link #WARMUP_STEPS}, in milliseconds. */
  record Measured(
      long parameters,
      double dataMs,
      double computeMs,
      double syncMs,
      double applyMs,
      double stepMs) {
    static Measured of(Path run) throws Exception {
      final JsonObject summary =
          JsonParser.parseString(Files.readString(run.resolve("summary.json"))).getAsJsonObject();
      final List<double[]> phases = new ArrayList<>();
      for (String line : Files.readAllLines(run.resolve("metrics.jsonl"))) {
        final JsonObject step = JsonParser.parseString(line).getAsJsonObject();
        if (!step.get("type").getAsString().equals("step")
            || step.get("step").getAsLong() <= WARMUP_STEPS) {
          continue;
        }
        final JsonObject p = step.getAsJsonObject("phases");
        phases.add(
            new double[] {
              p.get("data_ms").getAsDouble(),
              p.get("compute_ms").getAsDouble(),
              p.get("send_ms").getAsDouble()
                  + p.get("wait_ms").getAsDouble()
                  + p.get("receive_ms").getAsDouble(),
              p.get("apply_ms").getAsDouble()
            });
      }
      return new Measured(
          summary.get("parameters").getAsLong(),
          median(phases, 0),
          median(phases, 1),
          median(phases, 2),
          median(phases, 3),
          median(phases.stream().mapToDouble(p -> p[0] + p[1] + p[2] + p[3]).toArray()));
    }
  }

  /**
   * The rows of one configuration, overlap off and on, against the model. Off: a step is the
   * measured data, compute and apply phases plus the modeled synchronization. On: each layer's
   * chunks leave during the backward pass (taken as two thirds of the compute measured with overlap
   * off, whose compute includes no sending), so that much of the synchronization hides behind it.
   */
  static List<Row> rows(
      int workers,
      int shards,
      String compression,
      Measured off,
      Measured on,
      double bytesPerSecond) {
    // shards 0: the server in the driver JVM on h0 loads h0's link as one shard host does its own
    final double sync =
        syncModelMs(off.parameters(), workers, Math.max(1, shards), compression, bytesPerSecond);
    final double exposed = Math.max(0, sync - off.computeMs() * 2 / 3);
    return List.of(
        new Row(
            workers,
            shards,
            compression,
            false,
            off.syncMs(),
            sync,
            off.stepMs(),
            off.dataMs() + off.computeMs() + off.applyMs() + sync,
            off.computeMs()),
        new Row(
            workers,
            shards,
            compression,
            true,
            on.syncMs(),
            exposed,
            on.stepMs(),
            off.dataMs() + off.computeMs() + off.applyMs() + exposed,
            on.computeMs()));
  }

  public static void main(String[] args) throws Exception {
    final String rate = args.length > 0 ? args[0] : "200mbit";
    final int steps = args.length > 1 ? Integer.parseInt(args[1]) : 60;
    final String job = args.length > 2 ? args[2] : "fashion-mnist-lenet";
    final List<String> only =
        args.length > 3 && !args[3].equals("all") ? List.of(args[3].split(",")) : List.of();
    final List<String> submitFlags =
        args.length > 4 ? List.of(args).subList(4, args.length) : List.of();
    final double bytesPerSecond = bytesPerSecond(rate);
    final int warmup = job.startsWith(PARAMS) ? WARMUP_ITERATIONS : WARMUP_STEPS;
    if (steps <= warmup + 4) {
      throw new IllegalArgumentException(
          "STEPS=" + steps + ": give more than " + (warmup + 4) + " steps a run");
    }
    final Path tmp = Files.createTempDirectory("lockstep-scaling");
    try (Hosts hosts = Hosts.create(6)) {
      for (int h = 0; h < 6; h++) {
        hosts.shape(h, rate);
      }
      final Path secret = HostProcesses.secretFile(tmp.resolve("secret"));
      final List<String> shardServers = new ArrayList<>();
      for (int h = 4; h <= 5; h++) {
        shardServers.add(
            HostProcesses.startShardServer(
                hosts, h, secret, 0, tmp.resolve("shard-" + h + ".log")));
      }
      if (job.startsWith(PARAMS)) {
        synchronizations(
            hosts,
            tmp,
            secret,
            shardServers,
            Integer.parseInt(job.substring(PARAMS.length())),
            steps,
            only,
            rate);
        System.out.println();
        System.out.println("logs in " + tmp);
        return;
      }
      final String master = HostProcesses.startMaster(hosts, 0, tmp.resolve("master.log"));
      for (int h = 1; h <= 3; h++) {
        HostProcesses.startWorker(
            hosts, h, tmp.resolve("worker-" + h), tmp.resolve("worker-" + h + ".log"), master);
      }
      System.out.printf(
          Locale.ROOT,
          "%s, %d steps a run (medians of steps %d-%d), every link %s each way, MTU %d%n%n",
          job,
          steps,
          WARMUP_STEPS + 1,
          steps,
          rate,
          MTU);
      System.out.println(
          "| workers | shard hosts | compression | overlap | sync ms | model | ratio | step ms"
              + " | model | ratio | compute ms |");
      System.out.println("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
      for (Configuration c : Configuration.all(only)) {
        final int workers = c.workers();
        final int shards = c.shards();
        final String compression = c.compression();
        final String configuration = c.name();
        final Measured[] measured = new Measured[2];
        for (int overlap = 0; overlap < 2; overlap++) {
          final String name = configuration + "-overlap-" + (overlap == 1);
          final Path run = tmp.resolve(name);
          final Path log = tmp.resolve(name + ".log");
          final List<String> flags =
              new ArrayList<>(
                  shards == 0
                      ? List.of("--set", "lockstep.ps.host=" + hosts.address(0))
                      : List.of(
                          "--set",
                          "lockstep.ps.shard-servers="
                              + String.join(",", shardServers.subList(0, shards)),
                          "--set",
                          "lockstep.ps.secret-file=" + secret));
          flags.addAll(
              List.of(
                  "--set",
                  "lockstep.ps.compression=" + compression,
                  "--set",
                  "lockstep.ps.overlap=" + (overlap == 1)));
          flags.addAll(submitFlags);
          final List<String> submit =
              HostProcesses.lockstep(
                  HostProcesses.submitArgs(
                      master, job, workers, steps, run, flags.toArray(String[]::new)));
          final Process driver = hosts.start(0, log, Map.of(), submit);
          final boolean ended = driver.waitFor(10, TimeUnit.MINUTES);
          if (!ended || driver.exitValue() != 0) {
            driver.descendants().forEach(ProcessHandle::destroyForcibly);
            driver.destroyForcibly();
            throw new IllegalStateException(
                name + (ended ? " failed" : " ran past 10 minutes") + "; see " + log);
          }
          measured[overlap] = Measured.of(run);
        }
        for (Row row :
            rows(workers, shards, compression, measured[0], measured[1], bytesPerSecond)) {
          System.out.println(row.line());
        }
      }
    }
    System.out.println();
    System.out.println("runs and logs in " + tmp);
  }

  /**
   * Times {@link ScalingSync}'s synchronization of a {@code parameters}-float gradient, for 2 and 3
   * workers (on {@code h1} to {@code h3}), 1 and 2 shard hosts and compression {@code none} and
   * {@code fp16}, and prints each configuration's median over {@code iterations} after {@link
   * #WARMUP_ITERATIONS} next to the model's synchronization time.
   */
  static void synchronizations(
      Hosts hosts,
      Path tmp,
      Path secret,
      List<String> shardServers,
      int parameters,
      int iterations,
      List<String> only,
      String rate)
      throws Exception {
    final double bytesPerSecond = bytesPerSecond(rate);
    System.out.printf(
        Locale.ROOT,
        "synchronization of %,d floats (%.1f MB) alone, %d iterations a run (medians of %d-%d),"
            + " every link %s each way, MTU %d%n%n",
        parameters,
        parameters * 4 / 1e6,
        iterations,
        WARMUP_ITERATIONS + 1,
        iterations,
        rate,
        MTU);
    System.out.println(
        "| workers | shard hosts | compression | sync ms | model | ratio | min ms | max ms |");
    System.out.println("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (Configuration c : Configuration.all(only)) {
      final int workers = c.workers();
      final int shards = c.shards();
      final String compression = c.compression();
      final String configuration = c.name();
      final double[] millis =
          synchronization(
              hosts,
              tmp.resolve(configuration),
              secret,
              shardServers.subList(0, shards),
              parameters,
              workers,
              iterations,
              compression);
      final double[] timed = Arrays.copyOfRange(millis, WARMUP_ITERATIONS, millis.length);
      final double model =
          syncModelMs(parameters, workers, Math.max(1, shards), compression, bytesPerSecond);
      final double median = median(timed);
      System.out.printf(
          Locale.ROOT,
          "| %d | %d | %s | %.1f | %.1f | %.2f | %.1f | %.1f |%n",
          workers,
          shards,
          compression,
          median,
          model,
          median / model,
          Arrays.stream(timed).min().orElseThrow(),
          Arrays.stream(timed).max().orElseThrow());
    }
  }

  /**
   * One configuration of {@link #synchronizations}: the server process on {@code h0}, a worker
   * process on each of {@code h1} onwards.
   *
   * @return each iteration's time, as its slowest worker saw it, in milliseconds
   */
  private static double[] synchronization(
      Hosts hosts,
      Path folder,
      Path secret,
      List<String> shardServers,
      int parameters,
      int workers,
      int iterations,
      String compression)
      throws Exception {
    final Path done = Files.createDirectories(folder.resolve("times"));
    final Path shardsFile = folder.resolve("shards.bin");
    final List<String> serverArgs =
        new ArrayList<>(
            List.of(
                "server",
                shardsFile.toString(),
                done.toString(),
                hosts.address(0),
                Integer.toString(parameters),
                Integer.toString(workers),
                secret.toString()));
    serverArgs.addAll(shardServers);
    final List<Process> processes = new ArrayList<>();
    try {
      processes.add(
          hosts.start(
              0,
              folder.resolve("server.log"),
              Map.of(),
              HostProcesses.jvm(ScalingSync.class.getName(), serverArgs.toArray(String[]::new))));
      final List<Path> times = new ArrayList<>();
      for (int rank = 0; rank < workers; rank++) {
        times.add(done.resolve("rank-" + rank));
        processes.add(
            hosts.start(
                rank + 1,
                folder.resolve("worker-" + rank + ".log"),
                Map.of(),
                HostProcesses.jvm(
                    ScalingSync.class.getName(),
                    "worker",
                    shardsFile.toString(),
                    times.get(rank).toString(),
                    hosts.address(rank + 1),
                    Integer.toString(rank),
                    Integer.toString(iterations),
                    compression)));
      }
      // the workers first: the server waits for their times, and a failed worker would keep it
      for (Process process : processes.subList(1, processes.size())) {
        awaitSuccess(process, folder);
      }
      awaitSuccess(processes.get(0), folder);
      return ScalingSync.slowest(times);
    } finally {
      for (Process process : processes) {
        process.descendants().forEach(ProcessHandle::destroyForcibly);
        process.destroyForcibly();
      }
    }
  }

  private static void awaitSuccess(Process process, Path folder) throws InterruptedException {
    if (!process.waitFor(10, TimeUnit.MINUTES) || process.exitValue() != 0) {
      throw new IllegalStateException(
          folder.getFileName() + ": a process failed or ran past 10 minutes; see " + folder);
    }
  }

  private static double median(List<double[]> rows, int column) {
    return median(rows.stream().mapToDouble(r -> r[column]).toArray());
  }

  private static double median(double[] values) {
    final double[] sorted = values.clone();
    Arrays.sort(sorted);
    final int n = sorted.length;
    return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  }
}
