package io.lockstep.it;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.nio.charset.StandardCharsets;
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
 * <p>Run by {@code bench/scaling.sh [RATE] [STEPS] [JOB]}; needs root, like the {@link Hosts} it
 * makes, and removes them when it ends.
 */
public final class ScalingBench {
  /** The steps each run leaves out of its medians: the first stage's warm-up. */
  private static final int WARMUP_STEPS = 5;

  /** Bytes around each chunk's payload on the wire: frame header, Aeron, UDP, IPv4, Ethernet. */
  static final int CHUNK_OVERHEAD_BYTES = 64 + 32 + 8 + 20 + 14;

  /** A chunk's payload on a 1500-byte link (lockstep.ps.chunk-size=0 sizes it so). */
  static final int CHUNK_BYTES = 1376;

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
          "| %d | %d | %s | %s | %.1f | %.1f | %.2f | %.1f | %.1f | %.2f | %.1f |",
          workers,
          shards,
          compression,
          overlap ? "on" : "off",
          syncMs,
          syncModelMs,
          syncMs / syncModelMs,
          stepMs,
          stepModelMs,
          stepMs / stepModelMs,
          computeMs);
    }
  }

  /**
   * The bytes one worker's gradient puts on its link, each way: every chunk's payload plus {@link
   * #CHUNK_OVERHEAD_BYTES}, the chunks cut per shard.
   *
   * @param parameters floats in the gradient
   * @param shards shard servers, each with its own chunks
   * @param compression {@code none} (4 bytes a float) or {@code fp16} (2, and 4 bytes per chunk)
   */
  static double wireBytes(long parameters, int shards, String compression) {
    final boolean half = compression.equals("fp16");
    final int floatsPerChunk = half ? (CHUNK_BYTES - 4) / 2 : CHUNK_BYTES / 4;
    long chunks = 0;
    for (int s = 0; s < shards; s++) {
      final long range = parameters / shards + (s < parameters % shards ? 1 : 0);
      chunks += (range + floatsPerChunk - 1) / floatsPerChunk;
    }
    final double payload = half ? 2.0 * parameters + 4.0 * chunks : 4.0 * parameters;
    return payload + chunks * (double) CHUNK_OVERHEAD_BYTES;
  }

  /**
   * The model's synchronization time: a worker's link carries its gradient each way, a shard's link
   * the sum of its range from every worker each way; the busiest link sets the time, since the
   * shards answer chunk by chunk while later chunks still arrive.
   *
   * @param bytesPerSecond every link's rate, each way
   */
  static double syncModelMs(
      long parameters, int workers, int shards, String compression, double bytesPerSecond) {
    final double worker = wireBytes(parameters, shards, compression);
    final double shard = workers * worker / shards;
    return Math.max(worker, shard) / bytesPerSecond * 1e3;
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

  public static void main(String[] args) throws Exception {
    final String rate = args.length > 0 ? args[0] : "200mbit";
    final int steps = args.length > 1 ? Integer.parseInt(args[1]) : 60;
    final String job = args.length > 2 ? args[2] : "fashion-mnist-lenet";
    final double bytesPerSecond = bytesPerSecond(rate);
    final Path tmp = Files.createTempDirectory("lockstep-scaling");
    final List<Row> rows = new ArrayList<>();
    try (Hosts hosts = Hosts.create(6)) {
      for (int h = 0; h < 6; h++) {
        hosts.shape(h, rate);
      }
      final String master = HostProcesses.startMaster(hosts, 0, tmp.resolve("master.log"));
      for (int h = 1; h <= 3; h++) {
        HostProcesses.startWorker(
            hosts, h, tmp.resolve("worker-" + h), tmp.resolve("worker-" + h + ".log"), master);
      }
      final Path secret = HostProcesses.secretFile(tmp.resolve("secret"));
      final List<String> shardServers = new ArrayList<>();
      for (int h = 4; h <= 5; h++) {
        shardServers.add(
            HostProcesses.startShardServer(hosts, h, secret, tmp.resolve("shard-" + h + ".log")));
      }
      System.out.printf(
          Locale.ROOT,
          "%s, %d steps a run (medians of steps %d-%d), every link %s each way%n%n",
          job,
          steps,
          WARMUP_STEPS + 1,
          steps,
          rate);
      System.out.println(
          "| workers | shard hosts | compression | overlap | sync ms | model | ratio | step ms"
              + " | model | ratio | compute ms |");
      System.out.println("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
      for (int workers : new int[] {2, 3}) {
        for (int shards : new int[] {1, 2}) {
          for (String compression : List.of("none", "fp16")) {
            for (boolean overlap : new boolean[] {false, true}) {
              final String name =
                  String.format(
                      Locale.ROOT, "n%d-s%d-%s-%s", workers, shards, compression, overlap);
              final Path run = tmp.resolve(name);
              final Path log = tmp.resolve(name + ".log");
              final List<String> submit =
                  HostProcesses.lockstep(
                      "submit",
                      "--master",
                      master,
                      job,
                      "--workers",
                      Integer.toString(workers),
                      "--epochs",
                      "1",
                      "--max-steps",
                      Integer.toString(steps),
                      "--run-dir",
                      run.toString(),
                      "--set",
                      "lockstep.ps.transport=udp",
                      "--set",
                      "lockstep.worker.threads=1",
                      "--set",
                      "lockstep.ps.shard-servers="
                          + String.join(",", shardServers.subList(0, shards)),
                      "--set",
                      "lockstep.ps.secret-file=" + secret,
                      "--set",
                      "lockstep.ps.compression=" + compression,
                      "--set",
                      "lockstep.ps.overlap=" + overlap);
              final Process driver = hosts.start(0, log, Map.of(), submit);
              if (!driver.waitFor(10, TimeUnit.MINUTES) || driver.exitValue() != 0) {
                driver.destroyForcibly();
                throw new IllegalStateException(
                    name + " failed: " + Files.readString(log, StandardCharsets.UTF_8));
              }
              final Row row = row(run, workers, shards, compression, overlap, bytesPerSecond);
              rows.add(row);
              System.out.println(row.line());
            }
          }
        }
      }
    }
    System.out.println();
    System.out.println("runs and logs in " + tmp);
  }

  private static Row row(
      Path run, int workers, int shards, String compression, boolean overlap, double bytesPerSecond)
      throws Exception {
    final JsonObject summary =
        JsonParser.parseString(Files.readString(run.resolve("summary.json"))).getAsJsonObject();
    final long parameters = summary.get("parameters").getAsLong();
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
    final double data = median(phases, 0);
    final double compute = median(phases, 1);
    final double sync = median(phases, 2);
    final double apply = median(phases, 3);
    final double syncModel = syncModelMs(parameters, workers, shards, compression, bytesPerSecond);
    // overlap: the chunks of each layer leave during the backward pass (about two thirds of the
    // compute), so up to that much of the synchronization is hidden behind it
    final double exposed = overlap ? Math.max(0, syncModel - compute * 2 / 3) : syncModel;
    final double stepModel = data + compute + apply + exposed;
    final double[] steps = phases.stream().mapToDouble(p -> p[0] + p[1] + p[2] + p[3]).toArray();
    return new Row(
        workers,
        shards,
        compression,
        overlap,
        sync,
        overlap ? exposed : syncModel,
        median(steps),
        stepModel,
        compute);
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
