package io.lockstep.it;

import io.lockstep.jobs.Lockstep;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * The processes a cluster of {@link Hosts} runs, as a user starts them on real hosts: a Spark
 * standalone master and workers from the project's Spark home, and {@code lockstep} commands
 * ({@code submit}, {@code parameter-server}) in JVMs of their own.
 */
final class HostProcesses {
  static final Path HOME = Path.of(System.getProperty("lockstep.home", ".")).toAbsolutePath();
  static final Path SPARK_HOME = HOME.resolve("spark-home/target/spark-home");
  private static final long LOG_WAIT_SECONDS = 90;

  private HostProcesses() {}

  /**
   * Starts a Spark master on {@code host}, port 7077, and waits until it is up.
   *
   * @return the master's URL, {@code spark://hN:7077}
   */
  static String startMaster(Hosts hosts, int host, Path log) throws Exception {
    final String url = "spark://" + hosts.name(host) + ":7077";
    final Process master =
        hosts.start(
            host,
            log,
            sparkEnvironment(),
            spark(
                "org.apache.spark.deploy.master.Master",
                "--host",
                hosts.name(host),
                "--port",
                "7077",
                "--webui-port",
                "0"));
    awaitLog(master, log, "Starting Spark master at " + url);
    return url;
  }

  /**
   * Starts a Spark worker of one core and 2 GB on {@code host} and waits until the master has it.
   *
   * @param work the worker's folder, where its executors' logs go
   */
  static void startWorker(Hosts hosts, int host, Path work, Path log, String master)
      throws Exception {
    Files.createDirectories(work);
    Files.deleteIfExists(log);
    final Process worker =
        hosts.start(
            host,
            log,
            sparkEnvironment(),
            spark(
                "org.apache.spark.deploy.worker.Worker",
                "--host",
                hosts.name(host),
                "--port",
                "0",
                "--webui-port",
                "0",
                "--cores",
                "1",
                "--memory",
                "2g",
                "--work-dir",
                work.toString(),
                master));
    awaitLog(worker, log, "Successfully registered with master");
  }

  /**
   * Starts {@code lockstep parameter-server} on {@code host}, port 40300, and waits until it
   * listens.
   *
   * @param jobs the jobs it serves before it exits; 0 serves until stopped
   * @return its {@code ADDRESS:PORT} for {@code lockstep.ps.shard-servers}
   */
  static String startShardServer(Hosts hosts, int host, Path secret, int jobs, Path log)
      throws Exception {
    final List<String> command =
        lockstep(
            "parameter-server",
            "--host",
            hosts.address(host),
            "--port",
            "40300",
            "--jobs",
            Integer.toString(jobs),
            "--secret-file",
            secret.toString());
    awaitLog(hosts.start(host, log, Map.of(), command), log, "parameter-server: listening");
    return hosts.address(host) + ":40300";
  }

  /**
   * {@code submit}'s arguments for a run across hosts: one epoch of {@code steps} steps, the server
   * over UDP, one thread per worker (the hosts share this machine's cores), then {@code more}.
   */
  static String[] submitArgs(
      String master, String job, int workers, int steps, Path run, String... more) {
    final List<String> args =
        new ArrayList<>(
            List.of(
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
                "lockstep.worker.threads=1"));
    args.addAll(Arrays.asList(more));
    return args.toArray(String[]::new);
  }

  /** What a Spark daemon's environment has on a real host: its home, and no address pinned. */
  static Map<String, String> sparkEnvironment() {
    return Map.of(
        "SPARK_HOME", SPARK_HOME.toString(),
        "SPARK_SCALA_VERSION", "2.13",
        "OMP_WAIT_POLICY", "PASSIVE");
  }

  /** A Spark daemon's command line: {@code main} with the Spark home's jars. */
  static List<String> spark(String main, String... args) {
    final List<String> command =
        new ArrayList<>(
            List.of(java(), "-Xmx512m", "-cp", SPARK_HOME.resolve("jars") + "/*", main));
    command.addAll(Arrays.asList(args));
    return command;
  }

  /** The command line {@code bin/lockstep ARGS} runs, in a JVM of its own. */
  static List<String> lockstep(String... args) {
    return jvm(Lockstep.class.getName(), args);
  }

  /** A JVM of its own that runs {@code main} with this JVM's class path and Lockstep's options. */
  static List<String> jvm(String main, String... args) {
    final List<String> command = new ArrayList<>(List.of(java(), "-Xmx2g"));
    command.addAll(
        List.of(
            "--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED",
            "--add-opens=java.base/java.nio=ALL-UNNAMED",
            "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
            "--add-opens=java.base/java.lang=ALL-UNNAMED",
            "--add-opens=java.base/java.util=ALL-UNNAMED",
            "--add-opens=java.base/java.lang.invoke=ALL-UNNAMED",
            "-Dlockstep.home=" + HOME));
    final String cache = System.getProperty("org.bytedeco.javacpp.cachedir");
    if (cache != null) {
      command.add("-Dorg.bytedeco.javacpp.cachedir=" + cache);
    }
    command.addAll(List.of("-cp", System.getProperty("java.class.path"), main));
    command.addAll(Arrays.asList(args));
    return command;
  }

  /**
   * Waits up to 90 s until {@code log} contains {@code line}.
   *
   * @throws IllegalStateException with the log when the process exits first or the time is up
   */
  static void awaitLog(Process process, Path log, String line) throws Exception {
    final long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(LOG_WAIT_SECONDS);
    while (true) {
      final String text = Files.exists(log) ? Files.readString(log, StandardCharsets.UTF_8) : "";
      if (text.contains(line)) {
        return;
      }
      if (!process.isAlive()) {
        throw new IllegalStateException("exited before '" + line + "': " + text);
      }
      if (System.nanoTime() > deadline) {
        throw new IllegalStateException("no '" + line + "' in " + LOG_WAIT_SECONDS + " s: " + text);
      }
      Thread.sleep(200);
    }
  }

  /** A secret file of 32 random bytes that only its owner reads, for shard processes. */
  static Path secretFile(Path path) throws IOException {
    final byte[] bytes = new byte[32];
    new SecureRandom().nextBytes(bytes);
    Files.write(path, bytes);
    Files.setPosixFilePermissions(path, PosixFilePermissions.fromString("rw-------"));
    return path;
  }

  private static String java() {
    return Path.of(System.getProperty("java.home"), "bin", "java").toString();
  }
}
