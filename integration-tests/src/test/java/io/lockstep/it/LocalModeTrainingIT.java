package io.lockstep.it;

import static io.lockstep.it.Cli.assertExit;
import static io.lockstep.it.Cli.awaitSteps;
import static io.lockstep.it.Cli.summary;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Keys;
import io.lockstep.driver.TrainingDriver;
import io.lockstep.jobs.Lockstep;
import io.lockstep.run.RunComparison;
import io.lockstep.run.RunDirectory;
import io.lockstep.run.TrainingSummary;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.util.ModelSerializer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * The whole system in Spark local mode: the driver, a real Aeron media driver and parameter server,
 * barrier tasks running the workers, and the real Fashion-MNIST from Debian's package.
 */
@Timeout(900)
class LocalModeTrainingIT {

  private static JobConfig job(Map<String, String> overrides) {
    return JobConfig.load().with(overrides);
  }

  @Test
  void shouldReachEightyPercentTestAccuracyWithTwoWorkersOnATrainingSubset(
      @TempDir Path run, @TempDir Path scratch) throws Exception {
    final TrainingSummary summary =
        TrainingDriver.train(
            job(Map.of("lockstep.train.workers", "2", "lockstep.train.max-steps", "250")),
            run,
            false);
    assertTrue(summary.testAccuracy() >= 0.80, "test accuracy " + summary.testAccuracy());
    assertEquals(250, summary.steps());
    assertEquals(0, summary.rejectedFrames());
    assertTrue(Files.size(run.resolve("model.zip")) > 1_000_000);
    // images/s counts the workers' step loops, as PyTorch's scripts do; the stages' set-up is in
    // train_seconds and stage_images_per_second
    final var phases = summary.phaseSeconds();
    assertEquals(
        phases.data() + phases.compute() + phases.sync() + phases.apply(),
        summary.stepSeconds(),
        1e-9);
    assertTrue(summary.stepSeconds() < summary.trainSeconds(), summary.toString());
    assertEquals(250 * 128 / summary.stepSeconds(), summary.imagesPerSecond(), 1e-6);
    assertEquals(250 * 128 / summary.trainSeconds(), summary.stageImagesPerSecond(), 1e-6);
    final String json = Files.readString(run.resolve("summary.json"));
    for (String field :
        new String[] {
          "\"job\"",
          "\"workers\": 2",
          "\"batch_size\": 128",
          "\"epochs\"",
          "\"steps\": 250",
          "\"test_accuracy\"",
          "\"images_per_second\"",
          "\"step_seconds\"",
          "\"stage_images_per_second\"",
          "\"wall_seconds\""
        }) {
      assertTrue(json.contains(field), field + " missing from " + json);
    }
    // the saved model carries its optimizer state, so training can continue from it
    final ComputationGraph saved =
        ModelSerializer.restoreComputationGraph(run.resolve("model.zip").toFile(), true);
    assertEquals(saved.numParams(), saved.getUpdater().getStateViewArray().length());
    // one epoch: the best model is the last one, and the checkpoint holds it too
    assertEquals(summary.testAccuracy(), summary.bestTestAccuracy());
    assertEquals(
        parameters(run),
        ModelSerializer.restoreComputationGraph(run.resolve("best-model.zip").toFile(), false)
            .params());
    assertEquals(
        parameters(run),
        ModelSerializer.restoreComputationGraph(run.resolve("checkpoint.zip").toFile(), false)
            .params());
    // a line per step with every worker's phases, then the epoch's line
    final List<String> metrics = Files.readAllLines(run.resolve("metrics.jsonl"));
    assertEquals(251, metrics.size());
    final JsonObject last = JsonParser.parseString(metrics.get(249)).getAsJsonObject();
    assertEquals(250, last.get("step").getAsInt());
    assertEquals(128, last.get("samples").getAsInt());
    assertEquals(2, last.getAsJsonArray("worker_phases").size());
    for (String phase :
        List.of("data_ms", "compute_ms", "send_ms", "wait_ms", "receive_ms", "apply_ms")) {
      assertTrue(last.getAsJsonObject("phases").get(phase).getAsDouble() >= 0, phase);
    }
    assertTrue(last.getAsJsonObject("phases").get("compute_ms").getAsDouble() > 0);
    assertTrue(last.get("images_per_second").getAsDouble() > 0);
    final JsonObject epoch = JsonParser.parseString(metrics.get(250)).getAsJsonObject();
    assertEquals("epoch", epoch.get("type").getAsString());
    assertEquals(summary.testAccuracy(), epoch.get("test_value").getAsDouble());
    RunFilesCheck.assertTimeline(run, 2, 1);
    RunFilesCheck.assertReportRenders(run, scratch);
  }

  /**
   * Each opt-in mode through the whole system, across checkpoint stages (every 40 steps): the
   * replicas agree at every stage end (the driver checks their CRCs) and the model learns.
   */
  @ParameterizedTest
  @ValueSource(
      strings = {
        "lockstep.ps.mode=async,lockstep.ps.compression=bf16",
        "lockstep.ps.mode=stale-sync,lockstep.ps.staleness=1",
        "lockstep.ps.mode=local-sgd,lockstep.ps.local-steps=6",
        "lockstep.ps.compression=top-k,lockstep.ps.top-k-ratio=0.02"
      })
  void shouldTrainInEveryOptInModeAcrossCheckpointStages(String settings, @TempDir Path run)
      throws Exception {
    final Map<String, String> overrides = new java.util.HashMap<>();
    overrides.put("lockstep.train.workers", "2");
    overrides.put("lockstep.train.max-steps", "100");
    overrides.put("lockstep.checkpoint.every-steps", "40");
    for (String setting : settings.split(",")) {
      final String[] pair = setting.split("=", 2);
      overrides.put(pair[0], pair[1]);
    }
    final JobConfig job = job(overrides);
    final TrainingSummary summary = TrainingDriver.train(job, run, false);
    assertTrue(summary.testAccuracy() >= 0.60, settings + ": accuracy " + summary.testAccuracy());
    assertEquals(0, summary.rejectedFrames());
    assertEquals(
        job.get(Keys.PS_MODE).name().toLowerCase(java.util.Locale.ROOT).replace('_', '-'),
        summary.syncMode());
  }

  /**
   * From the command line, three workers compute exactly what one worker computes accumulating the
   * same three slices of every global batch (micro-batches of 40), bit for bit, with momentum and
   * with Adam, on the machine's own kernels; against one worker on the whole batch, momentum at a
   * stable rate stays within twice the noise floor (the same single-process run with another thread
   * count) plus one unit in the last place of the largest parameter.
   */
  @Test
  void shouldEqualOneWorkerAccumulatingTheSameSlicesWithThreeWorkersFromTheCommandLine(
      @TempDir Path runs) throws Exception {
    final String[] common = {
      "--batch-size",
      "120",
      "--max-steps",
      "30",
      "--seed",
      "7",
      "--set",
      "lockstep.worker.threads=1"
    };
    for (String optimizer : new String[] {"momentum", "adam"}) {
      final Path three = runs.resolve(optimizer + "-3");
      final Path accumulating = runs.resolve(optimizer + "-1-micro");
      final String[] job =
          concat(
              common,
              "--optimizer",
              optimizer,
              "--learning-rate",
              optimizer.equals("momentum") ? "0.01" : "0.001");
      train(job, three, "--workers", "3");
      train(job, accumulating, "--workers", "1", "--micro-batch", "40");
      final RunComparison comparison = RunComparison.of(three, accumulating, 1e-5);
      System.out.print(optimizer + ", 3 workers vs 1 accumulating:\n" + comparison.describe());
      assertTrue(comparison.identical(), comparison.describe());
      assertEquals(30, comparison.steps());
      assertEquals(
          summary(three).get("parameters_crc32").getAsString(),
          summary(accumulating).get("parameters_crc32").getAsString());
      if (optimizer.equals("momentum")) {
        final Path unsplit = runs.resolve("momentum-1");
        final Path otherThreads = runs.resolve("momentum-1-threads-2");
        train(job, unsplit, "--workers", "1");
        train(job, otherThreads, "--workers", "1", "--set", "lockstep.worker.threads=2");
        final RunComparison distance = RunComparison.of(three, unsplit, 1e-5);
        final RunComparison floor = RunComparison.of(otherThreads, unsplit, 1e-5);
        System.out.print(
            "3 workers vs 1 on the whole batch:\n"
                + distance.describe()
                + distance.describeAgainst(floor));
        final INDArray reference = parameters(unsplit);
        final float largest = reference.amaxNumber().floatValue();
        assertTrue(
            distance.maxRelativeDifference()
                <= 2 * floor.maxRelativeDifference() + Math.ulp(largest) / largest,
            distance.describe() + distance.describeAgainst(floor));
      }
    }
    // the 3-worker momentum run (IPC: untagged by default) again with every frame tagged: bit for
    // bit the same, so the run repeats and the tags take no part in the arithmetic
    final Path untagged = runs.resolve("momentum-3");
    final Path tagged = runs.resolve("momentum-3-tagged");
    assertExit(
        0,
        with(
            concat(common, "--optimizer", "momentum", "--learning-rate", "0.01"),
            "--workers",
            "3",
            "--set",
            "lockstep.ps.frame-tags=always",
            "--run-dir",
            tagged.toString()));
    final JsonObject taggedSummary = Cli.summary(tagged);
    final JsonObject untaggedSummary = Cli.summary(untagged);
    assertTrue(taggedSummary.get("frame_tags").getAsBoolean(), taggedSummary.toString());
    assertFalse(untaggedSummary.get("frame_tags").getAsBoolean(), untaggedSummary.toString());
    assertEquals(
        taggedSummary.get("parameters_crc32").getAsString(),
        untaggedSummary.get("parameters_crc32").getAsString());
    final RunComparison rerun = RunComparison.of(untagged, tagged, 1e-5);
    assertTrue(rerun.identical(), rerun.describe());
    assertEquals(0.0, rerun.maxLossDifference());
    assertEquals(0, taggedSummary.get("rejected_frames").getAsLong());
    assertEquals(0, untaggedSummary.get("rejected_frames").getAsLong());
    // and it trains: the loss falls and the test accuracy is far above chance (0.1); measured: 2.29
    // at step 1, 1.26 at step 30, accuracy 0.615
    final int steps = 30;
    final List<Double> losses = stepLosses(untagged);
    final double accuracy = untaggedSummary.get("test_accuracy").getAsDouble();
    System.out.printf(
        "ipc frames untagged: loss %.4f at step 1, %.4f at step %d; test accuracy %.4f%n",
        losses.get(0), losses.get(steps - 1), steps, accuracy);
    assertEquals(steps, losses.size());
    assertTrue(losses.get(steps - 1) < 0.7 * losses.get(0), "losses " + losses);
    assertTrue(accuracy >= 0.55, "test accuracy " + accuracy);
  }

  /** The per-step losses of a run's {@code metrics.jsonl}, in step order. */
  private static List<Double> stepLosses(Path run) throws IOException {
    final List<Double> losses = new ArrayList<>();
    for (String line : Files.readAllLines(run.resolve(RunDirectory.METRICS_FILE))) {
      final JsonObject json = JsonParser.parseString(line).getAsJsonObject();
      if (json.get("type").getAsString().equals("step")) {
        losses.add(json.get("loss").getAsDouble());
      }
    }
    return losses;
  }

  @Test
  void shouldResumeBitIdenticallyFromAnEpochEnd(@TempDir Path runs) {
    final Path straight = runs.resolve("straight");
    final Path resumed = runs.resolve("resumed");
    final String[] common = {"--workers", "2", "--max-steps", "40", "--seed", "3"};
    assertExit(0, concat(common, "--epochs", "2", "--run-dir", straight.toString()));
    assertExit(0, concat(common, "--epochs", "1", "--run-dir", resumed.toString()));
    assertExit(0, "train", "--resume", resumed.toString(), "--epochs", "2");
    final RunComparison comparison = RunComparison.of(resumed, straight, 1e-5);
    assertTrue(comparison.identical(), comparison.describe());
    assertEquals(80, comparison.steps());
    assertEquals(0.0, comparison.maxLossDifference());
    // elastic: a checkpoint of 2 workers resumed by 4 (same global batch, other slices) stays on
    // the trajectory within float rounding. Over a short horizon: rounding differences grow with
    // the steps in any float32 training (2 and 4 workers from scratch differ by 1e-2 after 40 steps
    // of this job, 3e-5 after 20), so a long comparison would measure chaos, not the resume.
    final String[] brief = {"--workers", "2", "--max-steps", "10", "--seed", "3"};
    final Path shortStraight = runs.resolve("short-straight");
    final Path elastic = runs.resolve("elastic");
    assertExit(0, concat(brief, "--epochs", "2", "--run-dir", shortStraight.toString()));
    assertExit(0, concat(brief, "--epochs", "1", "--run-dir", elastic.toString()));
    assertExit(0, "train", "--resume", elastic.toString(), "--epochs", "2", "--workers", "4");
    final RunComparison elasticity = RunComparison.of(elastic, shortStraight, 1e-5);
    assertEquals(20, elasticity.steps());
    assertTrue(elasticity.maxRelativeDifference() <= 1e-5, elasticity.describe());
    assertTrue(elasticity.maxLossDifference() <= 1e-5, elasticity.describe());
    // nothing left to train, a changed seed, a missing run, a changed epoch length or optimizer:
    // one-line errors, exit 2
    assertExit(2, "train", "--resume", resumed.toString(), "--epochs", "2");
    assertExit(2, "train", "--resume", resumed.toString(), "--epochs", "3", "--seed", "4");
    assertExit(2, "train", "--resume", runs.resolve("none").toString());
    assertExit(2, "train", "--resume", resumed.toString(), "--epochs", "3", "--max-steps", "30");
    assertExit(2, "train", "--resume", resumed.toString(), "--epochs", "3", "--optimizer", "adam");
  }

  @Test
  void shouldResumeBitIdenticallyAfterTheProcessIsKilledMidEpoch(@TempDir Path runs)
      throws Exception {
    final Path straight = runs.resolve("straight");
    final Path killed = runs.resolve("killed");
    final String[] job = {
      "--workers",
      "2",
      "--max-steps",
      "60",
      "--epochs",
      "1",
      "--seed",
      "5",
      "--set",
      "lockstep.checkpoint.every-steps=10"
    };
    final List<Path> shmBefore = aeronDirectories();
    final Process process =
        launch(concat(job, "--run-dir", killed.toString()), runs.resolve("killed.log"));
    try {
      awaitSteps(killed, 20, () -> process.isAlive() ? null : tail(runs.resolve("killed.log")));
    } finally {
      process.destroyForcibly().waitFor();
      // a killed JVM cannot remove its Aeron directory
      for (Path directory : aeronDirectories()) {
        if (!shmBefore.contains(directory)) {
          deleteRecursively(directory);
        }
      }
    }
    assertTrue(Files.isRegularFile(killed.resolve("checkpoint.zip")));
    assertTrue(!Files.exists(killed.resolve("summary.json")), "killed before the end");
    assertExit(0, "train", "--resume", killed.toString());
    assertExit(0, concat(job, "--run-dir", straight.toString()));
    final RunComparison comparison = RunComparison.of(killed, straight, 1e-5);
    assertTrue(comparison.identical(), comparison.describe());
    assertEquals(60, comparison.steps());
    assertEquals(0.0, comparison.maxLossDifference());
  }

  /**
   * The parameter server's process is killed ({@code kill -9}) in the middle of a run and comes
   * back on its port, as a supervisor would restart it: the workers fail fast, the driver runs the
   * failed stage again from its first step (the last checkpoint) with the new server, and the run
   * ends on the same bits as one never disturbed.
   */
  @Test
  void shouldRetryAStageWhenItsParameterServerIsKilled(@TempDir Path runs) throws Exception {
    final int shardPort = 47000 + (int) (Math.random() * 1000) * 4;
    final String[] job = {
      "--workers",
      "2",
      "--batch-size",
      "120",
      "--max-steps",
      "60",
      "--epochs",
      "1",
      "--optimizer",
      "momentum",
      "--seed",
      "11",
      "--set",
      "lockstep.ps.transport=udp",
      "--set",
      "lockstep.checkpoint.every-steps=20",
      "--set",
      "lockstep.ps.connect-timeout=10s",
      "--set",
      "lockstep.ps.shard-servers=127.0.0.1:" + shardPort,
      "--set",
      "lockstep.ps.secret-file=" + SECRET
    };
    final Path straight = runs.resolve("straight");
    final Path disturbed = runs.resolve("disturbed");
    final List<Process> processes = new ArrayList<>();
    try {
      final Process first = shardServer(shardPort, runs.resolve("shard-first.log"), 0);
      processes.add(first);
      assertExit(0, concat(job, "--run-dir", straight.toString()));
      final Process training =
          launch(concat(job, "--run-dir", disturbed.toString()), runs.resolve("disturbed.log"));
      processes.add(training);
      awaitSteps(
          disturbed, 20, () -> training.isAlive() ? null : tail(runs.resolve("disturbed.log")));
      first.destroyForcibly().waitFor();
      processes.add(shardServer(shardPort, runs.resolve("shard-restarted.log"), 0));
      assertTrue(training.waitFor(5, TimeUnit.MINUTES), "the disturbed run did not end");
      assertEquals(0, training.exitValue(), () -> tail(runs.resolve("disturbed.log")));
    } finally {
      for (Process process : processes) {
        process.destroyForcibly().waitFor();
      }
    }
    final String log = Files.readString(runs.resolve("disturbed.log"));
    assertTrue(log.contains("the stage failed"), "no stage was retried");
    final String summary = Files.readString(disturbed.resolve("summary.json"));
    assertTrue(summary.matches("(?s).*\"stage_retries\":\\s*[12],.*"), summary);
    final RunComparison comparison = RunComparison.of(disturbed, straight, 1e-5);
    assertTrue(comparison.identical(), comparison.describe());
    assertEquals(60, comparison.steps());
  }

  /** A log's last lines. */
  private static String tail(Path log) {
    try {
      final List<String> lines = Files.readAllLines(log);
      return String.join("\n", lines.subList(Math.max(0, lines.size() - 30), lines.size()));
    } catch (IOException e) {
      return log + ": " + e.getMessage();
    }
  }

  private static List<Path> aeronDirectories() throws Exception {
    try (var listing = Files.list(Path.of("/dev/shm"))) {
      return listing.filter(p -> p.getFileName().toString().startsWith("lockstep-")).toList();
    }
  }

  private static void deleteRecursively(Path directory) throws Exception {
    try (var walk = Files.walk(directory)) {
      for (Path path : walk.sorted(java.util.Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(path);
      }
    }
  }

  /** Starts {@code lockstep train ARGS} in a JVM of its own, so it can be killed. */
  private static Process launch(String[] args, Path log) throws Exception {
    final List<String> command = new ArrayList<>();
    command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    command.add("--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED");
    command.add("--add-opens=java.base/java.nio=ALL-UNNAMED");
    command.add("--add-opens=java.base/sun.nio.ch=ALL-UNNAMED");
    command.add("--add-opens=java.base/java.lang=ALL-UNNAMED");
    command.add("--add-opens=java.base/java.util=ALL-UNNAMED");
    command.add("--add-opens=java.base/java.lang.invoke=ALL-UNNAMED");
    final String cache = System.getProperty("org.bytedeco.javacpp.cachedir");
    if (cache != null) {
      command.add("-Dorg.bytedeco.javacpp.cachedir=" + cache);
    }
    command.add("-cp");
    command.add(System.getProperty("java.class.path"));
    command.add(Lockstep.class.getName());
    command.addAll(Arrays.asList(args));
    return new ProcessBuilder(command)
        .redirectErrorStream(true)
        .redirectOutput(log.toFile())
        .start();
  }

  /** {@code train}, then the arguments. */
  /** {@code first} (a whole command line) followed by {@code more}. */
  private static String[] with(String[] first, String... more) {
    final List<String> all = new ArrayList<>(Arrays.asList(first));
    all.addAll(Arrays.asList(more));
    return all.toArray(String[]::new);
  }

  /** Trains {@code job} (a whole command line) with {@code flags} into {@code run}: exit 0. */
  private static void train(String[] job, Path run, String... flags) {
    assertExit(0, with(with(job, flags), "--run-dir", run.toString()));
  }

  private static String[] concat(String[] first, String... more) {
    final List<String> all = new ArrayList<>(List.of("train"));
    all.addAll(Arrays.asList(first));
    all.addAll(Arrays.asList(more));
    return all.toArray(String[]::new);
  }

  @Test
  void shouldTrainWithSyncBatchNormAsOneProcessDoesFromTheCommandLine(@TempDir Path runs) {
    // two steps at a small rate: BatchNorm on small batches amplifies rounding step after step (see
    // DataParallelExactnessTest); 2 vs 1 workers were 1.2e-5 apart after 3 steps, 5.4e-4 after 5
    // at lr 0.05
    final int steps = 2;
    final Path two = runs.resolve("sync-2");
    final Path one = runs.resolve("sync-1");
    final Path perSlice = runs.resolve("per-slice-2");
    for (Path run : new Path[] {two, one, perSlice}) {
      assertExit(
          0,
          "train",
          "--set",
          "lockstep.model.name=resnet-mini",
          "--set",
          "lockstep.batchnorm.sync=" + (run != perSlice),
          "--set",
          "lockstep.optimizer.learning-rate=0.01",
          "--workers",
          run == one ? "1" : "2",
          "--batch-size",
          "64",
          "--max-steps",
          Integer.toString(steps),
          "--optimizer",
          "momentum",
          "--seed",
          "7",
          "--run-dir",
          run.toString());
    }
    // one worker's SyncBatchNorm is Deeplearning4j's BatchNorm on the whole batch (unit-tested)
    final RunComparison comparison = RunComparison.of(two, one, 1e-5);
    System.out.print("resnet-mini SyncBatchNorm, 2 workers vs 1:\n" + comparison.describe());
    assertTrue(comparison.maxRelativeDifference() <= 1e-5, comparison.describe());
    assertEquals(steps, comparison.steps());
    final RunComparison unsynchronized = RunComparison.of(perSlice, one, 1e-5);
    assertTrue(
        unsynchronized.maxRelativeDifference() > 100 * comparison.maxRelativeDifference(),
        "per-slice statistics should be far from one process:\n" + unsynchronized.describe());
  }

  /**
   * The secret the shard processes and the drivers of these tests share: 32 random bytes in a file
   * only its owner may read (what {@code createTempFile} makes on POSIX).
   */
  private static final Path SECRET = secretFile();

  private static Path secretFile() {
    try {
      final Path file = Files.createTempFile("lockstep-secret-", "");
      file.toFile().deleteOnExit();
      final byte[] secret = new byte[32];
      new java.security.SecureRandom().nextBytes(secret);
      Files.write(file, secret);
      return file;
    } catch (java.io.IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }

  /** Starts {@code lockstep parameter-server} in a JVM of its own and waits until it listens. */
  private static Process shardServer(int port, Path log) throws Exception {
    return shardServer(port, log, 2);
  }

  /** A shard server process serving {@code jobs} jobs (0: any number), once it listens. */
  private static Process shardServer(int port, Path log, int jobs) throws Exception {
    final List<String> command = new ArrayList<>();
    command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    command.add("--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED");
    command.add("-Xmx512m");
    command.add("-cp");
    command.add(System.getProperty("java.class.path"));
    command.add(Lockstep.class.getName());
    command.addAll(
        List.of(
            "parameter-server",
            "--host",
            "127.0.0.1",
            "--port",
            Integer.toString(port),
            "--jobs",
            Integer.toString(jobs),
            "--secret-file",
            SECRET.toString()));
    final Process process =
        new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
    final long deadline = System.nanoTime() + 120_000_000_000L;
    while (!Files.readString(log).contains("parameter-server: listening")) {
      assertTrue(process.isAlive(), "parameter-server exited: " + Files.readString(log));
      assertTrue(System.nanoTime() < deadline, "parameter-server did not listen in 120 s");
      Thread.sleep(50);
    }
    return process;
  }

  @Test
  void shouldTrainThroughShardProcessesAndShardThreadsAsThroughOneServer(@TempDir Path runs)
      throws Exception {
    final int port = 44000 + (int) (Math.random() * 2000) * 4;
    final String[] common = {
      "--workers",
      "2",
      "--batch-size",
      "120",
      "--max-steps",
      "20",
      "--optimizer",
      "momentum",
      "--seed",
      "7",
      "--set",
      "lockstep.ps.transport=udp"
    };
    final Path one = runs.resolve("one-server");
    final Path processes = runs.resolve("two-shard-processes");
    final Path threads = runs.resolve("three-shard-threads");
    assertExit(0, concat(common, "--run-dir", one.toString()));
    final String shardServers =
        "lockstep.ps.shard-servers=127.0.0.1:" + (port + 2) + ",127.0.0.1:" + (port + 4);
    final List<Process> shards = new ArrayList<>();
    try {
      shards.add(shardServer(port + 2, runs.resolve("shard-0.log")));
      shards.add(shardServer(port + 4, runs.resolve("shard-1.log")));
      assertExit(
          0,
          concat(
              common,
              "--set",
              shardServers,
              "--set",
              "lockstep.ps.secret-file=" + SECRET,
              "--run-dir",
              processes.toString()));
      // the same processes serve a second job, asynchronous across two stages: the mode and its
      // bound reach them through CONFIGURE
      final Path stale = runs.resolve("stale-sync-shard-processes");
      assertExit(
          0,
          concat(
              common,
              "--set",
              shardServers,
              "--set",
              "lockstep.ps.secret-file=" + SECRET,
              "--set",
              "lockstep.ps.mode=stale-sync",
              "--set",
              "lockstep.ps.staleness=1",
              "--set",
              "lockstep.checkpoint.every-steps=10",
              "--run-dir",
              stale.toString()));
      final String summary = Files.readString(stale.resolve("summary.json"));
      assertTrue(summary.matches("(?s).*\"sync_mode\":\\s*\"stale-sync\".*"), summary);
      assertTrue(summary.matches("(?s).*\"rejected_frames\":\\s*0,.*"), summary);
      for (Process shard : shards) {
        assertTrue(shard.waitFor(60, TimeUnit.SECONDS), "a shard process outlived its job");
        assertEquals(0, shard.exitValue());
      }
    } finally {
      for (Process shard : shards) {
        shard.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
      }
    }
    assertExit(0, concat(common, "--set", "lockstep.ps.shards=3", "--run-dir", threads.toString()));
    // each shard adds its range in rank order, as one server does: the same floats, bit for bit
    for (Path sharded : List.of(processes, threads)) {
      final RunComparison comparison = RunComparison.of(sharded, one, 1e-5);
      System.out.print(sharded.getFileName() + " vs one server:\n" + comparison.describe());
      assertTrue(comparison.identical(), comparison.describe());
      assertEquals(20, comparison.steps());
    }
    // a shard process that is not there: a one-line error naming it, exit 1, within the timeout
    final long started = System.nanoTime();
    assertExit(
        1,
        concat(
            common,
            "--set",
            "lockstep.ps.shard-servers=127.0.0.1:" + (port + 2),
            "--set",
            "lockstep.ps.secret-file=" + SECRET,
            "--set",
            "lockstep.ps.connect-timeout=3s",
            "--run-dir",
            runs.resolve("no-shard").toString()));
    assertTrue(System.nanoTime() - started < 60_000_000_000L, "the missing shard took too long");
  }

  @Test
  void shouldExitWithAnErrorForBadInput() {
    assertExit(2, "train", "--set", "lockstep.batchnorm.sync=true", "--max-steps", "1");
    assertExit(2, "train", "--workers", "0");
    assertExit(2, "train", "--set", "lockstep.train.wokers=3");
    assertExit(1, "train", "--data-dir", "/nonexistent/fashion", "--max-steps", "1");
  }

  private static INDArray parameters(Path run) throws Exception {
    return ModelSerializer.restoreComputationGraph(run.resolve("model.zip").toFile(), false)
        .params();
  }
}
