package io.lockstep.it;

import static io.lockstep.it.Cli.assertExit;
import static io.lockstep.it.Cli.awaitSteps;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.lockstep.data.LabeledImages;
import io.lockstep.data.Mnist;
import io.lockstep.jobs.Lockstep;
import io.lockstep.run.RunComparison;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.hdfs.MiniDFSCluster;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The way a user runs Lockstep beyond one JVM: {@code cluster start} (a real Spark standalone
 * master and two worker JVMs), {@code submit} (spark-submit in client mode with the shaded jar),
 * the executors reading Fashion-MNIST from HDFS (a MiniDFSCluster's NameNode and DataNode), {@code
 * cluster stop}; an executor killed with SIGKILL mid-run, survived by retrying its stage.
 */
@Timeout(value = 15, unit = TimeUnit.MINUTES)
class StandaloneClusterIT {
  private static final Path FASHION = Path.of("/usr/share/datasets/fashion-mnist");

  @Test
  void shouldTrainOnAStandaloneClusterWithExecutorsReadingHdfs(@TempDir Path tmp) throws Exception {
    final Configuration hadoop = new Configuration();
    hadoop.set(MiniDFSCluster.HDFS_MINIDFS_BASEDIR, tmp.resolve("hdfs").toString());
    final MiniDFSCluster hdfs = new MiniDFSCluster.Builder(hadoop).numDataNodes(1).build();
    try {
      final FileSystem fs = hdfs.getFileSystem();
      final org.apache.hadoop.fs.Path data = new org.apache.hadoop.fs.Path("/datasets/fashion");
      fs.mkdirs(data);
      try (Stream<Path> files = Files.list(FASHION)) {
        for (Path file : files.filter(p -> p.toString().endsWith("-ubyte.gz")).toList()) {
          fs.copyFromLocalFile(new org.apache.hadoop.fs.Path(file.toUri()), data);
        }
      }
      final String dataUri = fs.getUri() + data.toString();
      // the readers see the same images through HDFS as on disk
      final LabeledImages fromHdfs = Mnist.load(dataUri, Mnist.Split.TEST);
      final LabeledImages local = Mnist.load(FASHION.toString(), Mnist.Split.TEST);
      assertEquals(local.count(), fromHdfs.count());
      assertTrue(java.util.Arrays.equals(local.pixels(), fromHdfs.pixels()));
      assertTrue(java.util.Arrays.equals(local.labels(), fromHdfs.labels()));

      final Path clusterDir = tmp.resolve("cluster");
      assertExit(0, "cluster", "start", "--workers", "2", "--dir", clusterDir.toString());
      final JsonObject cluster = json(clusterDir.resolve("cluster.json"));
      final String master = cluster.get("masterUrl").getAsString();
      final List<Long> pids = new ArrayList<>();
      cluster.getAsJsonArray("workerPids").forEach(p -> pids.add(p.getAsLong()));
      pids.add(cluster.get("masterPid").getAsLong());
      assertTrue(master.matches("spark://127\\.0\\.0\\.1:[0-9]+"), master);
      final List<Long> executorPids = new ArrayList<>();
      try {
        // a second start on the same folder, bad train flags: refused before anything starts
        assertExit(2, "cluster", "start", "--workers", "2", "--dir", clusterDir.toString());
        assertExit(2, "submit", "--master", master, "--workers", "0");
        assertExit(2, "submit", "--master", master, "--set", "lockstep.spark.master=local[2]");

        final Path run = tmp.resolve("run");
        assertExit(0, submit(master, dataUri, run));
        final JsonObject summary = json(run.resolve("summary.json"));
        assertEquals(master, summary.get("spark_master").getAsString());
        assertEquals("udp", summary.get("transport").getAsString());
        assertEquals(100, summary.get("steps").getAsInt());
        final double accuracy = summary.get("test_accuracy").getAsDouble();
        assertTrue(accuracy >= 0.70, "test accuracy " + accuracy);
        // two executor JVMs, one under each worker, ran the two ranks
        final List<Path> executorLogs = new ArrayList<>();
        for (int i = 0; i < 2; i++) {
          try (Stream<Path> walk = Files.walk(clusterDir.resolve("worker-" + i))) {
            executorLogs.addAll(
                walk.filter(p -> p.getFileName().toString().equals("stderr")).toList());
          }
        }
        assertEquals(2, executorLogs.size(), executorLogs.toString());
        final String logs =
            Files.readString(executorLogs.get(0), StandardCharsets.UTF_8)
                + Files.readString(executorLogs.get(1), StandardCharsets.UTF_8);
        for (Path log : executorLogs) {
          assertFalse(
              withoutHeartbeatsAtTheEnd(Files.readString(log, StandardCharsets.UTF_8))
                  .contains("Exception"),
              logs);
        }
        // each executor's log names its worker's rank and step
        for (String rank : List.of("rank 0: epoch 1 step 50/100", "rank 1: epoch 1 step 50/100")) {
          assertTrue(logs.contains(rank), rank + " missing from the executors' logs");
        }
        // the cluster run leaves the files people look at too
        for (String file : List.of("metrics.jsonl", "timeline.json", "report.html")) {
          assertTrue(Files.isRegularFile(run.resolve(file)), file);
        }
        RunFilesCheck.assertTimeline(run, 2, 1);

        // one executor JVM killed with SIGKILL mid-run: the stage runs again from its first step
        // (the last checkpoint) on the executor Spark starts in its place, and the run ends on the
        // same bits as the undisturbed one
        final Path killed = tmp.resolve("killed");
        final ExecutorService background = Executors.newSingleThreadExecutor();
        try {
          final Future<Integer> submitted =
              background.submit(
                  () ->
                      Lockstep.execute(
                          submit(
                              master,
                              dataUri,
                              killed,
                              "--set",
                              "lockstep.checkpoint.every-steps=50",
                              "--set",
                              "lockstep.ps.connect-timeout=20s")));
          awaitSteps(killed, 50, () -> submitted.isDone() ? "submit returned" : null);
          // into the second stage (steps 51-100), not between stages: once a task of it has
          // started (the stage takes 3-15 s, machine by machine; no fixed sleep lands in it)
          awaitExecutorLog(
              clusterDir,
              executorLogs,
              "epoch 1 steps 51-100 starting",
              () -> submitted.isDone() ? "submit returned" : null);
          final List<ProcessHandle> executors = executors(pids);
          assertEquals(2, executors.size(), executors.toString());
          executors.get(0).destroyForcibly();
          assertEquals(0, submitted.get(10, TimeUnit.MINUTES), "the run with a killed executor");
        } finally {
          background.shutdownNow();
        }
        final JsonObject survived = json(killed.resolve("summary.json"));
        assertTrue(survived.get("stage_retries").getAsInt() >= 1, survived.toString());
        assertEquals(100, survived.get("steps").getAsInt());
        final RunComparison comparison = RunComparison.of(killed, run, 1e-5);
        assertTrue(comparison.identical(), comparison.describe());
      } finally {
        for (long pid : pids) {
          ProcessHandle.of(pid)
              .ifPresent(p -> p.descendants().forEach(c -> executorPids.add(c.pid())));
        }
        assertExit(0, "cluster", "stop", "--dir", clusterDir.toString());
      }
      for (long pid : pids) {
        assertFalse(ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false), "pid " + pid);
      }
      for (long pid : executorPids) {
        assertFalse(ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false), "pid " + pid);
      }
      assertFalse(Files.exists(clusterDir.resolve("cluster.json")));
      assertExit(2, "cluster", "stop", "--dir", clusterDir.toString());
    } finally {
      hdfs.shutdown();
    }
  }

  /**
   * {@code submit} of the LeNet job: 2 workers, 100 steps, Fashion-MNIST from HDFS, UDP.
   *
   * @param more flags after those
   */
  private static String[] submit(String master, String dataUri, Path run, String... more) {
    final List<String> args =
        new ArrayList<>(
            List.of(
                "submit",
                "--master",
                master,
                "fashion-mnist-lenet",
                "--workers",
                "2",
                "--max-steps",
                "100",
                "--data-dir",
                dataUri,
                "--run-dir",
                run.toString(),
                "--set",
                "lockstep.ps.transport=udp"));
    args.addAll(List.of(more));
    return args.toArray(String[]::new);
  }

  /**
   * Waits until an executor log under {@code clusterDir} other than {@code earlier} contains {@code
   * line}.
   */
  private static void awaitExecutorLog(
      Path clusterDir, List<Path> earlier, String line, Supplier<String> running) throws Exception {
    final long deadline = System.nanoTime() + 300_000_000_000L;
    while (true) {
      final List<Path> logs;
      try (Stream<Path> walk = Files.walk(clusterDir)) {
        logs = walk.filter(p -> p.getFileName().toString().equals("stderr")).toList();
      }
      for (Path log : logs) {
        if (!earlier.contains(log)
            && Files.readString(log, StandardCharsets.UTF_8).contains(line)) {
          return;
        }
      }
      final String ended = running.get();
      assertTrue(
          ended == null, () -> "the run ended before an executor logged " + line + ": " + ended);
      assertTrue(System.nanoTime() < deadline, "no executor logged " + line + " within 5 minutes");
      Thread.sleep(20);
    }
  }

  /** The executor JVMs the workers started. */
  private static List<ProcessHandle> executors(List<Long> workerPids) {
    final List<ProcessHandle> executors = new ArrayList<>();
    for (long pid : workerPids) {
      ProcessHandle.of(pid)
          .ifPresent(
              worker ->
                  worker
                      .descendants()
                      .filter(
                          p ->
                              p.info()
                                  .commandLine()
                                  .orElse("")
                                  .contains("CoarseGrainedExecutorBackend"))
                      .forEach(executors::add));
    }
    return executors;
  }

  private static JsonObject json(Path file) throws Exception {
    return JsonParser.parseString(Files.readString(file, StandardCharsets.UTF_8)).getAsJsonObject();
  }

  /**
   * An executor's log without Spark's own warning when a heartbeat finds the application already
   * stopped ("Issue communicating with driver in heartbeater", caused by "Could not find
   * HeartbeatReceiver"): the driver ends the application while an executor's heartbeat is on its
   * way, which says nothing about the run. Any other exception stays.
   */
  static String withoutHeartbeatsAtTheEnd(String log) {
    final StringBuilder kept = new StringBuilder();
    final String[] entries = log.split("\n(?=\\d\\d:\\d\\d:\\d\\d )");
    for (String entry : entries) {
      if (!(entry.contains("Issue communicating with driver in heartbeater")
          && entry.contains("Could not find HeartbeatReceiver"))) {
        kept.append(entry).append('\n');
      }
    }
    return kept.toString();
  }
}
