package io.lockstep.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import io.lockstep.run.RunComparison;
import java.io.OutputStream;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.yarn.conf.YarnConfiguration;
import org.apache.hadoop.yarn.server.MiniYARNCluster;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code bin/lockstep submit --master yarn} on a real YARN: a MiniYARNCluster's ResourceManager and
 * NodeManager in the test JVM, the Hadoop configuration a user's {@code HADOOP_CONF_DIR} holds,
 * Spark's ApplicationMaster and two executors in YARN containers (JVMs the NodeManager launches,
 * with its memory monitor on, as on a production cluster), and the Spark jars uploaded by
 * spark-submit as a new user's first submit does.
 */
@Timeout(value = 10, unit = TimeUnit.MINUTES)
class YarnClusterIT {
  private static final long SUBMIT_MINUTES = 6;

  /** Where Hadoop's mini clusters put their folders. */
  private static final String TEST_DATA_PROPERTY = "test.build.data";

  @Test
  void shouldTrainOnYarnAsInLocalModeAndRefuseAMissingConfiguration(@TempDir Path tmp)
      throws Exception {
    // refused before spark-submit starts, in one line each: no HADOOP_CONF_DIR, and one whose
    // ResourceManager does not answer (a port nothing listens on)
    final Path noConf = tmp.resolve("no-conf.log");
    assertEquals(2, submit(Map.of(), noConf, "--workers", "2"));
    assertOneLine(noConf, "set HADOOP_CONF_DIR");
    final Path deadConf = Files.createDirectories(tmp.resolve("dead-conf"));
    final int closedPort;
    try (ServerSocket socket = new ServerSocket(0)) {
      closedPort = socket.getLocalPort();
    }
    Files.writeString(
        deadConf.resolve("yarn-site.xml"),
        "<configuration><property><name>yarn.resourcemanager.address</name>"
            + "<value>127.0.0.1:"
            + closedPort
            + "</value></property></configuration>");
    final Path dead = tmp.resolve("dead.log");
    assertEquals(2, submit(Map.of("HADOOP_CONF_DIR", deadConf.toString()), dead));
    assertOneLine(dead, "no YARN ResourceManager answers at 127.0.0.1:" + closedPort);

    final YarnConfiguration conf = new YarnConfiguration();
    // room for the ApplicationMaster (1 GB) and two executors (2 GB heap + 384 MB overhead each)
    conf.setInt(YarnConfiguration.YARN_MINICLUSTER_NM_PMEM_MB, 8192);
    conf.setInt(YarnConfiguration.NM_VCORES, 4);
    // the NodeManager kills a container that outgrows its memory, physical or virtual (2.1 times
    // the physical), as production clusters do
    conf.setBoolean(YarnConfiguration.YARN_MINICLUSTER_CONTROL_RESOURCE_MONITORING, true);
    conf.setBoolean(YarnConfiguration.NM_PMEM_CHECK_ENABLED, true);
    conf.setBoolean(YarnConfiguration.NM_VMEM_CHECK_ENABLED, true);
    conf.setInt(YarnConfiguration.RM_SCHEDULER_MINIMUM_ALLOCATION_MB, 256);
    conf.set("yarn.scheduler.capacity.root.queues", "default");
    conf.set("yarn.scheduler.capacity.root.default.capacity", "100");
    // a full CI disk must not mark the only node unhealthy
    conf.set(
        "yarn.nodemanager.disk-health-checker.max-disk-utilization-per-disk-percentage", "99.9");
    // containers start Java from the NodeManager's JAVA_HOME, which an administrator sets
    conf.set(YarnConfiguration.NM_ADMIN_USER_ENV, "JAVA_HOME=" + System.getProperty("java.home"));
    // the cluster's folders (logs, container directories) inside the test's, removed with it
    final String buildData = System.getProperty(TEST_DATA_PROPERTY);
    System.setProperty(TEST_DATA_PROPERTY, tmp.resolve("yarn-cluster").toString());
    final MiniYARNCluster yarn = new MiniYARNCluster("lockstep-yarn-it", 1, 1, 1);
    try {
      yarn.init(conf);
      yarn.start();
      final Path hadoopConf = Files.createDirectories(tmp.resolve("hadoop-conf"));
      awaitResourceManagerAddress(yarn.getConfig());
      // what a client's yarn-site.xml holds: where the ResourceManager takes applications and
      // where their ApplicationMasters ask it for containers (the mini cluster's ports are chosen
      // at start, where a real cluster's hostname gives the defaults)
      final Configuration client = new Configuration(false);
      for (String key :
          List.of(YarnConfiguration.RM_ADDRESS, YarnConfiguration.RM_SCHEDULER_ADDRESS)) {
        client.set(key, yarn.getConfig().get(key));
      }
      try (OutputStream out = Files.newOutputStream(hadoopConf.resolve("yarn-site.xml"))) {
        client.writeXml(out);
      }

      final Path run = tmp.resolve("yarn");
      final Path log = tmp.resolve("yarn.log");
      // the job both runs train: two workers of one thread, 60 steps
      final String[] job = {
        "--workers", "2", "--max-steps", "60", "--set", "lockstep.worker.threads=1"
      };
      final int exit =
          submit(Map.of("HADOOP_CONF_DIR", hadoopConf.toString()), log, withRunDir(job, run));
      assertEquals(0, exit, () -> tail(log));
      final JsonObject summary = Cli.summary(run);
      assertEquals("yarn", summary.get("spark_master").getAsString());
      assertEquals(2, summary.get("workers").getAsInt());
      assertEquals(60, summary.get("steps").getAsInt());

      // the two ranks ran in YARN containers: their executors' logs are the NodeManager's, and
      // neither logged an error
      final List<String> executors =
          containerLogs(yarn).stream().filter(text -> text.contains("rank ")).toList();
      assertEquals(2, executors.size(), executors.toString());
      for (int rank = 0; rank < 2; rank++) {
        final String line = "rank " + rank + ": epoch 1 step 50/60";
        assertTrue(
            executors.stream().anyMatch(text -> text.contains(line)),
            line + " missing from the executors' logs: " + executors);
      }
      for (String text : executors) {
        assertFalse(text.contains(" ERROR ") || text.contains("Exception in thread"), text);
      }

      // the same job in local mode ends on the same bits: the cluster manager changes nothing
      final Path local = tmp.resolve("local");
      final List<String> train = new ArrayList<>(List.of("train"));
      train.addAll(Arrays.asList(withRunDir(job, local)));
      Cli.assertExit(0, train.toArray(String[]::new));
      final RunComparison comparison = RunComparison.of(run, local, 0);
      assertTrue(comparison.identical(), comparison.describe());
    } finally {
      yarn.stop();
      if (buildData == null) {
        System.clearProperty(TEST_DATA_PROPERTY);
      } else {
        System.setProperty(TEST_DATA_PROPERTY, buildData);
      }
    }
  }

  /** {@code lockstep submit --master yarn ARGS} in a JVM of its own, with {@code environment}. */
  private static int submit(Map<String, String> environment, Path log, String... args)
      throws Exception {
    final List<String> submit = new ArrayList<>(List.of("submit", "--master", "yarn"));
    submit.addAll(Arrays.asList(args));
    final List<String> command = HostProcesses.lockstep(submit.toArray(String[]::new));
    final ProcessBuilder builder =
        new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile());
    builder.environment().remove("HADOOP_CONF_DIR");
    builder.environment().remove("YARN_CONF_DIR");
    builder.environment().putAll(environment);
    final Process process = builder.start();
    try {
      assertTrue(
          process.waitFor(SUBMIT_MINUTES, TimeUnit.MINUTES),
          () -> "submit still running after " + SUBMIT_MINUTES + " minutes: " + tail(log));
      return process.exitValue();
    } finally {
      process.descendants().forEach(ProcessHandle::destroyForcibly);
      process.destroyForcibly();
    }
  }

  /** {@code args} followed by {@code --run-dir run}. */
  private static String[] withRunDir(String[] args, Path run) {
    final String[] all = Arrays.copyOf(args, args.length + 2);
    all[args.length] = "--run-dir";
    all[args.length + 1] = run.toString();
    return all;
  }

  private static void assertOneLine(Path log, String expected) throws Exception {
    final List<String> lines = Files.readAllLines(log, StandardCharsets.UTF_8);
    assertEquals(1, lines.size(), () -> String.join("\n", lines));
    assertTrue(lines.get(0).contains(expected), lines.get(0));
  }

  private static void awaitResourceManagerAddress(Configuration conf) throws Exception {
    final long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    while (conf.get(YarnConfiguration.RM_ADDRESS, ":0").endsWith(":0")) {
      assertTrue(System.nanoTime() < deadline, "the ResourceManager has no port after 60 s");
      Thread.sleep(100);
    }
  }

  /** Each container's {@code stderr}: Spark's ApplicationMaster and executors log there. */
  private static List<String> containerLogs(MiniYARNCluster yarn) throws Exception {
    final List<String> logs = new ArrayList<>();
    for (String directory :
        yarn.getNodeManager(0).getConfig().getTrimmedStrings(YarnConfiguration.NM_LOG_DIRS)) {
      try (Stream<Path> walk = Files.walk(Path.of(directory))) {
        for (Path file : walk.filter(p -> p.getFileName().toString().equals("stderr")).toList()) {
          logs.add(Files.readString(file, StandardCharsets.UTF_8));
        }
      }
    }
    return logs;
  }

  private static String tail(Path log) {
    try {
      final String text = Files.readString(log, StandardCharsets.UTF_8);
      return text.substring(Math.max(0, text.length() - 4000));
    } catch (java.io.IOException e) {
      return "(no log: " + e.getMessage() + ")";
    }
  }
}
