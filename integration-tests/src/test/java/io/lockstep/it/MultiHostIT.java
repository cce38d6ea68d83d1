package io.lockstep.it;

import static io.lockstep.it.Cli.assertExit;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import io.lockstep.run.RunComparison;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Lockstep across hosts with no loopback anywhere: three network namespaces on a bridge ({@link
 * Hosts}, 1500-byte links), a Spark standalone master on {@code h0}, a worker on each of {@code h1}
 * and {@code h2}, and {@code submit} on {@code h0}, exactly as a user types it on a real cluster:
 * nothing names an address but the master's URL. The parameter server runs over UDP on the driver's
 * address, which Lockstep takes from Spark, in chunks that fit the links' MTU, or as shard
 * processes on the worker hosts.
 */
@Timeout(value = 12, unit = TimeUnit.MINUTES)
class MultiHostIT {
  private static final String MASTER = "spark://h0:7077";

  @TempDir static Path tmp;
  private static Hosts hosts;

  /** The cluster: a master on h0, a worker on each of h1 and h2, one core each. */
  @BeforeAll
  static void startCluster() throws Exception {
    hosts = Hosts.create(3);
    assertEquals(MASTER, HostProcesses.startMaster(hosts, 0, tmp.resolve("master.log")));
    for (int h = 1; h <= 2; h++) {
      startWorker(h);
    }
  }

  /** Starts a Spark worker of one core on host {@code h} and waits until the master has it. */
  private static void startWorker(int h) throws Exception {
    HostProcesses.startWorker(
        hosts, h, tmp.resolve("worker-" + h), tmp.resolve("worker-" + h + ".log"), MASTER);
  }

  @AfterAll
  static void stopCluster() {
    if (hosts != null) {
      hosts.close();
    }
  }

  /**
   * The run ends on the same bits as local mode with the same seed, whatever the hosts and the
   * transport; the server binds the driver host's address; no host's stack fragments a datagram.
   */
  @Test
  void shouldTrainAcrossHostsOnTheDriversAddressAsInLocalMode() throws Exception {
    final int steps = 40;
    final Path run = tmp.resolve("across");
    final long[] fragmentsBefore = fragments();
    final String output = submit(run, steps);
    final JsonObject summary = Cli.summary(run);
    assertEquals(MASTER, summary.get("spark_master").getAsString());
    assertEquals("udp", summary.get("transport").getAsString());
    assertEquals(steps, summary.get("steps").getAsInt());
    assertTrue(
        output.contains("UDP transport on " + hosts.address(0) + " "), "server address: " + output);
    for (int h = 1; h <= 2; h++) {
      final String worker = Files.readString(tmp.resolve("worker-" + h + ".log"));
      assertTrue(
          worker.contains("Asked to launch executor"), "no executor on h" + h + ": " + worker);
    }
    assertNoFragmentsSince(fragmentsBefore);
    assertSameAsLocal(run, steps);
  }

  /**
   * h2's link cut for 12 s in the middle of a stage: the server names the rank that stopped sending
   * and the step, within the step timeout; the driver runs the stage again once the link is back,
   * and the run ends on the same bits as an undisturbed one.
   */
  @Test
  void shouldRetryTheStageALinkCutStoppedAndEndOnTheSameBits() throws Exception {
    final int steps = 90;
    final Path run = tmp.resolve("cut");
    final Process driver =
        startSubmit(
            run,
            steps,
            "--set",
            "lockstep.checkpoint.every-steps=30",
            "--set",
            "lockstep.ps.step-timeout=5s");
    awaitExecutorLog(driver, "epoch 1 steps 31-60 starting");
    hosts.link(2, false);
    try {
      Thread.sleep(12_000);
    } finally {
      hosts.link(2, true);
    }
    assertTrue(driver.waitFor(6, TimeUnit.MINUTES), "the run did not end in 6 minutes");
    final String output = Files.readString(logOf(run), StandardCharsets.UTF_8);
    assertEquals(0, driver.exitValue(), output);
    assertTrue(output.matches("(?s).*step \\d+: no complete gradient from workers .*"), output);
    final JsonObject summary = Cli.summary(run);
    assertTrue(summary.get("stage_retries").getAsInt() >= 1, summary.toString());
    assertEquals(steps, summary.get("steps").getAsInt());
    assertSameAsLocal(run, steps);
  }

  /**
   * h2 lost for good in the middle of a stage: every process on it killed and its link down. The
   * stage fails as Spark loses the executor; once Spark has waited the connect timeout for a second
   * task slot in vain, the stage runs again on h1's worker alone, which computes h2's slice too as
   * a second micro-batch, and the run goes on; when h2 comes back (its link up, a new Spark
   * worker), a later stage takes it back. summary.json and metrics.jsonl say which steps ran on how
   * many workers, and the run ends on the same bits as an undisturbed one.
   */
  @Test
  void shouldGoOnWithoutALostHostAndTakeItBackOnTheSameBits() throws Exception {
    final int steps = 300;
    final Path run = tmp.resolve("lost");
    final Path log = logOf(run);
    final Process driver =
        startSubmit(
            run,
            steps,
            "--set",
            "lockstep.checkpoint.every-steps=20",
            "--set",
            "lockstep.ps.connect-timeout=20s");
    try {
      awaitExecutorLog(driver, "epoch 1 steps 41-60 starting");
      hosts.kill(2);
      hosts.link(2, false);
      HostProcesses.awaitLog(driver, log, "running on 1 of 2 workers");
    } finally {
      hosts.link(2, true);
      startWorker(2);
    }
    assertTrue(driver.waitFor(6, TimeUnit.MINUTES), "the run did not end in 6 minutes");
    final String output = Files.readString(log, StandardCharsets.UTF_8);
    assertEquals(0, driver.exitValue(), output);
    assertTrue(output.contains("running on all 2 workers from step"), output);
    final JsonObject summary = Cli.summary(run);
    assertEquals(steps, summary.get("steps").getAsInt());
    final List<Integer> spans = new ArrayList<>();
    long next = 0;
    for (com.google.gson.JsonElement element : summary.getAsJsonArray("worker_spans")) {
      final JsonObject span = element.getAsJsonObject();
      assertEquals(next, span.get("from_step").getAsLong(), summary.toString());
      next = span.get("to_step").getAsLong();
      spans.add(span.get("workers").getAsInt());
    }
    assertEquals(steps, next);
    assertEquals(List.of(2, 1, 2), spans, summary.toString());
    final long oneWorkerSteps =
        Files.readAllLines(run.resolve("metrics.jsonl")).stream()
            .filter(line -> line.contains("\"type\":\"step\"") && line.contains("\"workers\":1,"))
            .count();
    assertTrue(oneWorkerSteps >= 20, oneWorkerSteps + " steps on one worker in metrics.jsonl");
    assertSameAsLocal(run, steps);
  }

  /**
   * The parameter server as two shard processes, one on each worker host, which read a shared
   * secret file; the driver on h0 configures them over UDP and they reply to its address. The run
   * ends on the same bits as local mode with one server in the driver.
   */
  @Test
  void shouldTrainWithShardProcessesOnOtherHostsAsInLocalMode() throws Exception {
    final int steps = 30;
    final Path secret = HostProcesses.secretFile(tmp.resolve("secret"));
    final List<String> servers = new ArrayList<>();
    for (int h = 1; h <= 2; h++) {
      servers.add(
          HostProcesses.startShardServer(hosts, h, secret, 1, tmp.resolve("shard-" + h + ".log")));
    }
    final Path run = tmp.resolve("shards");
    final long[] fragmentsBefore = fragments();
    submit(
        run,
        steps,
        "--set",
        "lockstep.ps.shard-servers=" + String.join(",", servers),
        "--set",
        "lockstep.ps.secret-file=" + secret);
    assertEquals(steps, Cli.summary(run).get("steps").getAsInt());
    assertNoFragmentsSince(fragmentsBefore);
    assertSameAsLocal(run, steps);
  }

  /**
   * The default transport, IPC, with executors on other hosts than the driver: refused in one line
   * that names the transport, the rank and its host, at once rather than after the connect timeout.
   */
  @Test
  void shouldRefuseIpcForExecutorsOnOtherHostsInOneLine() throws Exception {
    final Path run = tmp.resolve("ipc");
    final long start = System.nanoTime();
    final Process driver = startSubmit(run, 10, "--set", "lockstep.ps.transport=ipc");
    assertTrue(driver.waitFor(3, TimeUnit.MINUTES), "the run did not end in 3 minutes");
    final double seconds = (System.nanoTime() - start) / 1e9;
    final String output = Files.readString(logOf(run), StandardCharsets.UTF_8);
    assertEquals(2, driver.exitValue(), output);
    final List<String> errors = output.lines().filter(l -> l.startsWith("lockstep:")).toList();
    assertEquals(1, errors.size(), output);
    assertTrue(
        errors
            .get(0)
            .matches(
                "lockstep: lockstep.ps.transport=ipc needs every worker on the driver's host \\(.*\\),"
                    + " but rank [01] runs on (h[12]|198\\.18\\.0\\.1[12]);"
                    + " set lockstep.ps.transport=udp.*"),
        errors.get(0));
    assertTrue(seconds < 60, "refused after " + seconds + " s, the connect timeout's time");
  }

  /** Runs {@code submit} on h0 and returns its output, once it exited 0. */
  private static String submit(Path run, int steps, String... more) throws Exception {
    final Path log = logOf(run);
    final Process driver = startSubmit(run, steps, more);
    assertTrue(driver.waitFor(6, TimeUnit.MINUTES), "the run did not end in 6 minutes");
    final String output = Files.readString(log, StandardCharsets.UTF_8);
    assertEquals(0, driver.exitValue(), output);
    return output;
  }

  /** Starts {@code submit} on h0, its output to {@link #logOf} the run. */
  private static Process startSubmit(Path run, int steps, String... more) throws IOException {
    return hosts.start(
        0,
        logOf(run),
        Map.of(),
        HostProcesses.lockstep(
            HostProcesses.submitArgs(MASTER, "fashion-mnist-lenet", 2, steps, run, more)));
  }

  /** Where {@link #startSubmit} writes the driver's output for {@code run}. */
  private static Path logOf(Path run) {
    return tmp.resolve(run.getFileName() + ".log");
  }

  /** Trains the same job in local mode and checks that {@code run} ended on the same bits. */
  private static void assertSameAsLocal(Path run, int steps) {
    final Path local = tmp.resolve(run.getFileName() + "-local");
    assertExit(
        0,
        "train",
        "fashion-mnist-lenet",
        "--workers",
        "2",
        "--epochs",
        "1",
        "--max-steps",
        Integer.toString(steps),
        "--run-dir",
        local.toString(),
        "--set",
        "lockstep.worker.threads=1");
    final RunComparison comparison = RunComparison.of(run, local, 0);
    assertTrue(comparison.identical(), comparison.describe());
  }

  /**
   * Checks that no host's stack IP-fragmented a datagram since {@code before} ({@link #fragments}).
   */
  private static void assertNoFragmentsSince(long[] before) throws IOException {
    final long[] after = fragments();
    for (int h = 0; h < 3; h++) {
      assertEquals(0, after[h] - before[h], "IP fragments made on " + hosts.name(h));
    }
  }

  private static long[] fragments() throws IOException {
    final long[] made = new long[3];
    for (int h = 0; h < 3; h++) {
      made[h] = hosts.fragmentsCreated(h);
    }
    return made;
  }

  /** Waits until an executor's log, under a worker's folder, contains {@code line}. */
  private static void awaitExecutorLog(Process driver, String line) throws Exception {
    final long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(4);
    while (true) {
      for (int h = 1; h <= 2; h++) {
        try (Stream<Path> walk = Files.walk(tmp.resolve("worker-" + h))) {
          for (Path log : walk.filter(p -> p.getFileName().toString().equals("stderr")).toList()) {
            if (Files.readString(log, StandardCharsets.UTF_8).contains(line)) {
              return;
            }
          }
        }
      }
      assertTrue(driver.isAlive(), "the run ended before '" + line + "'");
      assertTrue(System.nanoTime() < deadline, "no '" + line + "' in 4 minutes");
      Thread.sleep(50);
    }
  }
}
