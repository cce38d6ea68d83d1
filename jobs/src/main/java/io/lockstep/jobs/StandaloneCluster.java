package io.lockstep.jobs;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonParseException;
import io.lockstep.conf.ConfigurationException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A Spark standalone cluster on 127.0.0.1 made of plain JVMs: one master and N workers started from
 * a Spark home's {@code jars/} folder, as {@code sbin/start-master.sh} and {@code start-worker.sh}
 * would start them from a distribution. What it started is written to {@code cluster.json} in its
 * folder, so {@link #stop} stops exactly those processes (and the executors they launched) and
 * nothing else.
 */
final class StandaloneCluster {
  /** The file in the cluster's folder that names its processes. */
  static final String STATE_FILE = "cluster.json";

  private static final Gson JSON = new GsonBuilder().setPrettyPrinting().create();
  private static final Pattern MASTER_URL =
      Pattern.compile("Starting Spark master at (spark://[^\\s]+)");
  private static final String REGISTERED = "Successfully registered with master";
  private static final String MARKER = "-Dlockstep.cluster.dir=";

  /** What {@code cluster.json} holds. */
  record State(String masterUrl, String sparkHome, long masterPid, List<Long> workerPids) {
    List<Long> pids() {
      final List<Long> all = new ArrayList<>(workerPids);
      all.add(masterPid);
      return all;
    }
  }

  private StandaloneCluster() {}

  /**
   * Starts a master and {@code workers} workers and waits until every worker has registered.
   *
   * @param dir the cluster's folder: logs, worker folders, {@code cluster.json}
   * @param sparkHome a folder with Spark's {@code jars/}
   * @param workers worker JVMs
   * @param coresPerWorker cores each worker offers (one executor slot per core)
   * @param memoryPerWorker memory each worker offers its executors, as Spark writes it ({@code 4g})
   * @param timeout the longest wait for the master, then for each worker
   * @return the running cluster
   */
  static State start(
      Path dir,
      Path sparkHome,
      int workers,
      int coresPerWorker,
      String memoryPerWorker,
      Duration timeout) {
    if (workers < 1) {
      throw new ConfigurationException("--workers " + workers + ": a cluster needs at least 1");
    }
    if (coresPerWorker < 1) {
      throw new ConfigurationException("--cores " + coresPerWorker + ": at least 1");
    }
    if (!memoryPerWorker.matches("[1-9][0-9]*[mMgG]")) {
      throw new ConfigurationException(
          "--memory " + memoryPerWorker + ": give megabytes or gigabytes, as 2048m or 4g");
    }
    checkSparkHome(sparkHome);
    final Optional<State> running = running(dir);
    if (running.isPresent()) {
      throw new ConfigurationException(
          "a cluster started from "
              + dir
              + " is running at "
              + running.get().masterUrl()
              + "; stop it first (bin/lockstep cluster stop)");
    }
    final List<Process> started = new ArrayList<>();
    try {
      Files.createDirectories(dir);
      Files.deleteIfExists(dir.resolve(STATE_FILE));
      final Path masterLog = dir.resolve("master.log");
      final Process master =
          launch(
              dir,
              sparkHome,
              masterLog,
              "org.apache.spark.deploy.master.Master",
              "--host",
              "127.0.0.1",
              "--port",
              "0",
              "--webui-port",
              "0");
      started.add(master);
      final String url = awaitLine(master, masterLog, MASTER_URL, timeout, "master").group(1);
      final List<Long> workerPids = new ArrayList<>();
      for (int i = 0; i < workers; i++) {
        final Path workDir = dir.resolve("worker-" + i);
        Files.createDirectories(workDir);
        final Path log = dir.resolve("worker-" + i + ".log");
        final Process worker =
            launch(
                dir,
                sparkHome,
                log,
                "org.apache.spark.deploy.worker.Worker",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--webui-port",
                "0",
                "--cores",
                Integer.toString(coresPerWorker),
                "--memory",
                memoryPerWorker,
                "--work-dir",
                workDir.toString(),
                url);
        started.add(worker);
        workerPids.add(worker.pid());
      }
      for (int i = 0; i < workers; i++) {
        awaitLine(
            started.get(i + 1),
            dir.resolve("worker-" + i + ".log"),
            Pattern.compile(Pattern.quote(REGISTERED)),
            timeout,
            "worker " + i);
      }
      final State state = new State(url, sparkHome.toString(), master.pid(), workerPids);
      final Path tmp = dir.resolve(STATE_FILE + ".tmp");
      Files.writeString(tmp, JSON.toJson(state), StandardCharsets.UTF_8);
      Files.move(
          tmp,
          dir.resolve(STATE_FILE),
          StandardCopyOption.ATOMIC_MOVE,
          StandardCopyOption.REPLACE_EXISTING);
      return state;
    } catch (IOException e) {
      stopAll(started.stream().map(Process::toHandle).toList());
      throw new UncheckedIOException(dir + ": cannot set up the cluster folder", e);
    } catch (RuntimeException e) {
      stopAll(started.stream().map(Process::toHandle).toList());
      throw e;
    }
  }

  /**
   * Stops the processes {@code cluster.json} names, with the executors they launched.
   *
   * @param dir the cluster's folder
   * @return the processes stopped (0 when they had all exited already)
   */
  static int stop(Path dir) {
    final State state =
        read(dir)
            .orElseThrow(
                () ->
                    new ConfigurationException(
                        "no cluster was started from "
                            + dir
                            + " (no "
                            + STATE_FILE
                            + "); nothing to stop"));
    final List<ProcessHandle> ours = new ArrayList<>();
    for (long pid : state.pids()) {
      ProcessHandle.of(pid).filter(h -> startedFrom(h, dir)).ifPresent(ours::add);
    }
    stopAll(ours);
    try {
      Files.deleteIfExists(dir.resolve(STATE_FILE));
    } catch (IOException e) {
      throw new UncheckedIOException(dir.resolve(STATE_FILE) + ": cannot remove", e);
    }
    return ours.size();
  }

  /**
   * The cluster started from {@code dir}, while any of its processes still runs (a master that died
   * may leave workers behind: they are stopped by {@link #stop}, not orphaned by a new start).
   *
   * @param dir the cluster's folder
   * @return the state, or empty
   */
  static Optional<State> running(Path dir) {
    return read(dir)
        .filter(
            s ->
                s.pids().stream()
                    .anyMatch(
                        pid -> ProcessHandle.of(pid).filter(h -> startedFrom(h, dir)).isPresent()));
  }

  private static Optional<State> read(Path dir) {
    final Path file = dir.resolve(STATE_FILE);
    if (!Files.isRegularFile(file)) {
      return Optional.empty();
    }
    try {
      final State state =
          JSON.fromJson(Files.readString(file, StandardCharsets.UTF_8), State.class);
      if (state == null || state.masterUrl() == null || state.workerPids() == null) {
        throw new JsonParseException("fields missing");
      }
      return Optional.of(state);
    } catch (IOException | JsonParseException e) {
      throw new ConfigurationException(
          file + ": not a cluster file (" + e.getMessage() + "); stop its processes by hand");
    }
  }

  /** A pid is ours only while it is a JVM that carries this folder's marker: pids get reused. */
  private static boolean startedFrom(ProcessHandle handle, Path dir) {
    return handle.isAlive()
        && handle
            .info()
            .arguments()
            .map(args -> List.of(args).contains(MARKER + dir.toAbsolutePath()))
            .orElse(false);
  }

  private static void stopAll(List<ProcessHandle> processes) {
    final List<ProcessHandle> all = new ArrayList<>();
    for (ProcessHandle process : processes) {
      // executors are the workers' children: a worker stops them on SIGTERM, but not on a kill
      process.descendants().forEach(all::add);
      all.add(process);
    }
    all.forEach(ProcessHandle::destroy);
    for (ProcessHandle process : all) {
      try {
        process.onExit().get(20, TimeUnit.SECONDS);
      } catch (Exception e) {
        process.destroyForcibly();
      }
    }
    for (ProcessHandle process : all) {
      try {
        process.onExit().get(10, TimeUnit.SECONDS);
      } catch (Exception e) {
        throw new IllegalStateException(
            "process " + process.pid() + " did not exit after a kill; stop it by hand", e);
      }
    }
  }

  private static Process launch(Path dir, Path sparkHome, Path log, String main, String... args)
      throws IOException {
    final List<String> command = new ArrayList<>();
    command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    command.add("-Xmx512m");
    command.add(MARKER + dir.toAbsolutePath());
    command.add("-cp");
    command.add(sparkHome.resolve("jars") + "/*");
    command.add(main);
    command.addAll(List.of(args));
    final ProcessBuilder builder = new ProcessBuilder(command);
    builder.environment().put("SPARK_HOME", sparkHome.toAbsolutePath().toString());
    builder.environment().put("SPARK_SCALA_VERSION", "2.13");
    builder.environment().put("SPARK_LOCAL_IP", "127.0.0.1");
    builder.environment().putIfAbsent("OMP_WAIT_POLICY", "PASSIVE");
    return builder
        .redirectErrorStream(true)
        .redirectOutput(log.toFile())
        .redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()))
        .start();
  }

  private static Matcher awaitLine(
      Process process, Path log, Pattern pattern, Duration timeout, String what) {
    final long deadline = System.nanoTime() + timeout.toNanos();
    while (true) {
      final String text = readLog(log);
      final Matcher matcher = pattern.matcher(text);
      if (matcher.find()) {
        return matcher;
      }
      if (!process.isAlive()) {
        throw new IllegalStateException(
            "the Spark "
                + what
                + " exited ("
                + process.exitValue()
                + "): "
                + lastLine(text)
                + "; see "
                + log);
      }
      if (System.nanoTime() > deadline) {
        throw new IllegalStateException(
            "the Spark "
                + what
                + " did not start within "
                + timeout.toSeconds()
                + " s; see "
                + log);
      }
      try {
        Thread.sleep(100);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException("interrupted while starting the " + what, e);
      }
    }
  }

  private static String readLog(Path log) {
    try {
      return Files.isRegularFile(log) ? Files.readString(log, StandardCharsets.UTF_8) : "";
    } catch (IOException e) {
      throw new UncheckedIOException(log + ": cannot read", e);
    }
  }

  private static String lastLine(String text) {
    final List<String> lines = text.lines().filter(l -> !l.isBlank()).toList();
    return lines.isEmpty() ? "no output" : lines.get(lines.size() - 1).strip();
  }

  /**
   * Checks that {@code sparkHome} has a {@code jars/} folder with Spark in it.
   *
   * @param sparkHome the folder
   */
  static void checkSparkHome(Path sparkHome) {
    final Path jars = sparkHome.resolve("jars");
    boolean hasSpark = false;
    if (Files.isDirectory(jars)) {
      try (var listing = Files.list(jars)) {
        hasSpark = listing.anyMatch(p -> p.getFileName().toString().startsWith("spark-core_"));
      } catch (IOException e) {
        throw new UncheckedIOException(jars + ": cannot list", e);
      }
    }
    if (!hasSpark) {
      throw new ConfigurationException(
          sparkHome
              + ": not a Spark home (no jars/spark-core_*.jar); build it with 'mvn install"
              + " -DskipTests' (spark-home/target/spark-home) or pass --spark-home");
    }
  }
}
