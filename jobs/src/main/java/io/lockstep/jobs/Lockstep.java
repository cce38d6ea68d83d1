package io.lockstep.jobs;

import com.typesafe.config.Config;
import io.lockstep.conf.Compression;
import io.lockstep.conf.ComputeEngine;
import io.lockstep.conf.ConfigKey;
import io.lockstep.conf.ConfigurationException;
import io.lockstep.conf.FrameTags;
import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Keys;
import io.lockstep.conf.Precision;
import io.lockstep.conf.Transport;
import io.lockstep.data.DataException;
import io.lockstep.driver.SparkSettings;
import io.lockstep.driver.TrainingDriver;
import io.lockstep.models.ModelZoo;
import io.lockstep.protocol.FrameKey;
import io.lockstep.ps.ShardServer;
import io.lockstep.run.RunComparison;
import io.lockstep.run.RunDirectory;
import io.lockstep.run.RunReport;
import io.lockstep.run.TrainingSummary;
import io.lockstep.worker.StepBenchmark;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * The {@code lockstep} command line: {@code train}, {@code submit}, {@code cluster}, {@code
 * compare}, {@code report}, {@code config}, {@code bench}.
 */
@Command(
    name = "lockstep",
    // every command answers --help and --version (the one-line errors send the user to --help)
    scope = CommandLine.ScopeType.INHERIT,
    mixinStandardHelpOptions = true,
    version = "lockstep 0.1.0",
    description = "Data-parallel training of convolutional networks on Apache Spark.",
    subcommands = {
      Lockstep.Train.class,
      Lockstep.Compare.class,
      Lockstep.Report.class,
      Lockstep.PrintConfig.class,
      Lockstep.Bench.class,
      Lockstep.ParameterServerShard.class,
      Lockstep.Cluster.class,
      Lockstep.Submit.class,
      Lockstep.Models.class
    })
public final class Lockstep implements Runnable {
  private static final String JOB_RESOURCES = "/io/lockstep/jobs/";

  /** The jobs shipped in this jar. */
  static final List<String> JOBS =
      List.of(
          "fashion-mnist-lenet",
          "cifar10-lenet",
          "imagenet-resnet18",
          "mnist-transfer",
          "shapes-detection",
          "shapes-grounding");

  @Option(
      names = "--verbose",
      scope = CommandLine.ScopeType.INHERIT,
      description = "on an error, print its stack trace after the one-line message")
  boolean verbose;

  @Override
  public void run() {
    CommandLine.usage(this, System.out);
  }

  /**
   * Runs the command line and exits with its status.
   *
   * @param args the arguments
   */
  public static void main(String[] args) {
    System.exit(execute(args));
  }

  /**
   * Runs the command line.
   *
   * @param args the arguments
   * @return 0 on success, 1 on a failed run, 2 on bad usage or configuration
   */
  public static int execute(String... args) {
    final Lockstep lockstep = new Lockstep();
    final CommandLine cli = new CommandLine(lockstep);
    cli.setExecutionExceptionHandler(
        (e, commandLine, parseResult) -> {
          final Throwable root = rootCause(e);
          commandLine.getErr().println("lockstep: " + message(root));
          if (lockstep.verbose) {
            e.printStackTrace(commandLine.getErr());
          }
          return e instanceof ConfigurationException ? 2 : 1;
        });
    // a mistyped flag: one line and where to look, not the whole usage
    cli.setParameterExceptionHandler(
        (e, arguments) -> {
          final CommandLine command = e.getCommandLine();
          command
              .getErr()
              .println(
                  "lockstep: "
                      + e.getMessage()
                      + "; see "
                      + command.getCommandSpec().qualifiedName(" ")
                      + " --help");
          if (Arrays.asList(arguments).contains("--verbose")) {
            e.printStackTrace(command.getErr());
          }
          return 2;
        });
    return cli.execute(args);
  }

  /**
   * The exception whose message to print: the first of ours down the cause chain (its message names
   * the key or file; its cause holds only a library's words, such as an {@code EOFException}'s),
   * else the deepest cause.
   */
  private static Throwable rootCause(Throwable e) {
    Throwable cause = e;
    while (cause.getCause() != null
        && cause.getCause() != cause
        && !(cause instanceof ConfigurationException)
        && !(cause instanceof DataException)) {
      cause = cause.getCause();
    }
    return cause;
  }

  private static String message(Throwable e) {
    final String message = e.getMessage();
    return message == null ? e.getClass().getName() : message.lines().findFirst().orElse(message);
  }

  /** Reads a job: a name shipped in the jar, or a HOCON file. */
  static Config jobLayer(String job) {
    if (job.endsWith(".conf")) {
      return JobConfig.read(Path.of(job));
    }
    try (InputStream in = Lockstep.class.getResourceAsStream(JOB_RESOURCES + job + ".conf")) {
      if (in == null) {
        throw new ConfigurationException(
            "no job named '" + job + "'; use one of " + JOBS + " or a FILE.conf");
      }
      return JobConfig.parse(new String(in.readAllBytes(), StandardCharsets.UTF_8), job);
    } catch (IOException e) {
      throw new ConfigurationException(job + ": cannot read the job (" + e.getMessage() + ")");
    }
  }

  /** {@code lockstep train}. */
  @Command(name = "train", description = "Train a job (a shipped job's name or a FILE.conf).")
  static final class Train implements Callable<Integer> {
    private static final String DEFAULT_JOB = "fashion-mnist-lenet";

    @Parameters(
        index = "0",
        arity = "0..1",
        description = "job name or FILE.conf (default: " + DEFAULT_JOB + ")")
    String job;

    @Option(
        names = "--resume",
        paramLabel = "RUN_DIR",
        description = "continue the run in RUN_DIR from its checkpoint.zip (flags may extend it)")
    String resume;

    @Option(names = "--workers", description = "data-parallel workers")
    Integer workers;

    @Option(names = "--epochs", description = "passes over the training set")
    Integer epochs;

    @Option(names = "--batch-size", description = "global batch, split across workers")
    Integer batchSize;

    @Option(
        names = "--micro-batch",
        description =
            "gradient accumulation: largest batch one pass computes (lockstep.train.micro-batch)")
    Integer microBatch;

    @Option(names = "--seed", description = "seed of weights and shuffles")
    Long seed;

    @Option(names = "--max-steps", description = "cap on the steps of each epoch")
    Integer maxSteps;

    @Option(names = "--optimizer", description = "sgd|momentum|nesterov|adam|adagrad|rmsprop")
    String optimizer;

    @Option(names = "--learning-rate", description = "learning rate")
    Double learningRate;

    @Option(names = "--data-dir", description = "folder or Hadoop URI with the dataset")
    String dataDir;

    @Option(names = "--run-dir", description = "where summary.json and model.zip go")
    String runDir;

    @Option(
        names = "--pretrained",
        paramLabel = "FILE",
        description = "start from a saved model (a run's model.zip): new head, the rest loaded")
    String pretrained;

    @Option(names = "--set", description = "any configuration key: --set KEY=VALUE (repeatable)")
    List<String> sets = List.of();

    @Override
    public Integer call() {
      final JobConfig config = config();
      final Path run =
          config.get(Keys.RUN_DIR).isEmpty()
              ? Path.of(
                  "runs",
                  config.get(Keys.JOB_NAME)
                      + "-"
                      + LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss")))
              : Path.of(config.get(Keys.RUN_DIR));
      RunDirectory.check(run, resume != null);
      final TrainingSummary summary = TrainingDriver.train(config, run, resume != null);
      System.out.printf(
          "%s: %s %.4f after %d epoch(s), %.0f images/s, %.1f s; run in %s%n",
          summary.job(),
          summary.testMetric().replace('_', ' '),
          summary.testAccuracy(),
          summary.epochs(),
          summary.imagesPerSecond(),
          summary.wallSeconds(),
          run);
      if (summary.scratchTestAccuracy() != null) {
        System.out.printf(
            "%s: from random weights with the same budget: %s %.4f (run in %s)%n",
            summary.job(),
            summary.testMetric().replace('_', ' '),
            summary.scratchTestAccuracy(),
            run.resolve(RunDirectory.SCRATCH_DIR));
      }
      return 0;
    }

    /** The job these flags describe; a configuration error names the flag or key. */
    JobConfig config() {
      final Map<String, String> overrides = new LinkedHashMap<>();
      put(overrides, Keys.WORKERS, workers);
      put(overrides, Keys.EPOCHS, epochs);
      put(overrides, Keys.BATCH_SIZE, batchSize);
      put(overrides, Keys.MICRO_BATCH, microBatch);
      put(overrides, Keys.SEED, seed);
      put(overrides, Keys.MAX_STEPS, maxSteps);
      put(overrides, Keys.OPTIMIZER, optimizer);
      put(overrides, Keys.LEARNING_RATE, learningRate);
      put(overrides, Keys.DATA_DIR, dataDir);
      put(overrides, Keys.RUN_DIR, runDir);
      put(overrides, Keys.MODEL_PRETRAINED, pretrained);
      for (String set : sets) {
        final int eq = set.indexOf('=');
        if (eq <= 0) {
          throw new ConfigurationException("--set " + set + ": expected KEY=VALUE");
        }
        overrides.put(set.substring(0, eq).trim(), set.substring(eq + 1).trim());
      }
      final Config base;
      if (resume == null) {
        base = jobLayer(job == null ? DEFAULT_JOB : job);
      } else {
        if (job != null) {
          throw new ConfigurationException(
              "give a job or --resume RUN_DIR, not both: a resumed run keeps its job");
        }
        if (runDir != null && !Path.of(runDir).equals(Path.of(resume))) {
          throw new ConfigurationException(
              "--run-dir "
                  + runDir
                  + " differs from --resume "
                  + resume
                  + "; a run resumes in place");
        }
        final Path saved = Path.of(resume, RunDirectory.JOB_FILE);
        if (!Files.isRegularFile(saved)) {
          throw new ConfigurationException(
              resume + ": not a run directory (no " + RunDirectory.JOB_FILE + ")");
        }
        base = jobLayer(saved.toString());
        overrides.put(Keys.RUN_DIR.name(), resume);
      }
      return JobConfig.load(base, JobConfig.overrides(overrides));
    }

    private static void put(Map<String, String> overrides, ConfigKey<?> key, Object value) {
      if (value != null) {
        overrides.put(key.name(), value.toString());
      }
    }
  }

  /** {@code lockstep compare}. */
  @Command(
      name = "compare",
      description = "How far two runs' final parameters and per-step losses are apart.")
  static final class Compare implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "RUN_A", description = "the run under test")
    Path a;

    @Parameters(index = "1", paramLabel = "RUN_B", description = "the reference run")
    Path b;

    @Option(
        names = "--tolerance",
        defaultValue = "1e-5",
        description = "relative tolerance counted against max |b| (default: ${DEFAULT-VALUE})")
    double tolerance;

    @Option(
        names = "--floor",
        paramLabel = "RUN_C",
        description =
            "a second run of RUN_B's configuration with one equally valid change of rounding (such"
                + " as another lockstep.worker.threads): prints how far it is from RUN_B, the noise"
                + " floor, beside RUN_A's distance")
    Path floor;

    @Override
    public Integer call() {
      final RunComparison comparison = RunComparison.of(a, b, tolerance);
      System.out.print(comparison.describe());
      if (floor != null) {
        System.out.print(comparison.describeAgainst(RunComparison.of(floor, b, tolerance)));
      }
      return 0;
    }
  }

  /** {@code lockstep report}. */
  @Command(
      name = "report",
      description =
          "Write RUN_DIR/report.html again from the run's files: charts, confusion matrix, test"
              + " images.")
  static final class Report implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "RUN_DIR", description = "a training run's folder")
    Path runDir;

    @Override
    public Integer call() {
      System.out.println(RunReport.write(runDir));
      return 0;
    }
  }

  /** {@code lockstep bench}. */
  @Command(
      name = "bench",
      description = "Benchmarks that print figures.",
      subcommands = {Lockstep.BenchSync.class, Lockstep.BenchStep.class})
  static final class Bench implements Runnable {
    @Override
    public void run() {
      throw new ConfigurationException(
          "bench needs a benchmark: lockstep bench sync --help, lockstep bench step --help");
    }
  }

  /** {@code lockstep bench sync}. */
  @Command(
      name = "sync",
      description =
          "Time one gradient synchronization through the parameter server; prints median_ms.")
  static final class BenchSync implements Callable<Integer> {
    @Option(names = "--params", defaultValue = "11173962", description = "floats per gradient")
    int parameters;

    @Option(names = "--workers", defaultValue = "2", description = "workers (threads)")
    int workers;

    @Option(names = "--iterations", defaultValue = "20", description = "timed iterations")
    int iterations;

    @Option(
        names = "--shards",
        defaultValue = "1",
        description = "parameter server shards (threads in the same JVM)")
    int shards;

    @Option(names = "--warmup", defaultValue = "3", description = "untimed iterations first")
    int warmup;

    @Option(names = "--transport", defaultValue = "ipc", description = "ipc|udp (127.0.0.1)")
    String transport;

    @Option(
        names = "--chunk-size",
        defaultValue = "0",
        description =
            "payload of one chunk, bytes; 0 takes the largest that travels as one frame, as"
                + " lockstep.ps.chunk-size does over ipc")
    int chunkSize;

    @Option(
        names = "--term-length",
        description = "Aeron term length, bytes (default: lockstep.ps.term-length's)")
    Long termLength;

    @Option(
        names = "--compression",
        defaultValue = "none",
        description = "none|fp16|bf16: how chunks are encoded, both ways")
    String compression;

    @Option(
        names = "--frame-tags",
        defaultValue = "network",
        description =
            "network|always|off: which frames carry an HMAC-SHA256 tag (lockstep.ps.frame-tags;"
                + " network: udp's, not ipc's)")
    String frameTags;

    @Override
    public Integer call() throws Exception {
      final Compression encoding =
          choice(
              "--compression", compression, Compression.NONE, Compression.FP16, Compression.BF16);
      final Transport chosen = choice("--transport", transport, Transport.values());
      final FrameTags tags = choice("--frame-tags", frameTags, FrameTags.values());
      final long term = termLength != null ? termLength : Keys.PS_TERM_LENGTH.defaultOf();
      final long chunk = chunkSize != 0 ? chunkSize : JobConfig.largestChunkBytes(term);
      final SyncBenchmark.Settings settings;
      try {
        settings =
            new SyncBenchmark.Settings(
                parameters,
                workers,
                iterations,
                warmup,
                chosen,
                Math.toIntExact(chunk),
                Math.toIntExact(term),
                shards,
                encoding,
                tags.on(chosen));
      } catch (IllegalArgumentException e) {
        throw new ConfigurationException(e.getMessage());
      } catch (ArithmeticException e) {
        throw new ConfigurationException(
            "--chunk-size " + chunk + " / --term-length " + term + ": above 2 GiB; give bytes");
      }
      System.out.println(SyncBenchmark.run(settings).line());
      return 0;
    }
  }

  /**
   * The value a flag names, written as configuration files write it ({@link Keys#lowerName}).
   *
   * @throws ConfigurationException naming the flag and the values it takes
   */
  @SafeVarargs
  private static <E extends Enum<E>> E choice(String flag, String value, E... allowed) {
    final String[] names = new String[allowed.length];
    for (int i = 0; i < allowed.length; i++) {
      names[i] = Keys.lowerName(allowed[i]);
      if (names[i].equals(value.toLowerCase(Locale.ROOT))) {
        return allowed[i];
      }
    }
    final int last = names.length - 1;
    throw new ConfigurationException(
        flag
            + " "
            + value
            + ": expected "
            + (last == 0
                ? names[0]
                : String.join(", ", Arrays.copyOf(names, last)) + " or " + names[last]));
  }

  /** {@code lockstep bench step}. */
  @Command(
      name = "step",
      description =
          "Time one worker's training step (forward, backward, update) on random data of the"
              + " model's shape; prints images_per_second.")
  static final class BenchStep implements Callable<Integer> {
    @Option(
        names = "--model",
        defaultValue = "lenet",
        description = "a model: lenet, resnet18-cifar, ...")
    String model;

    @Option(names = "--batch-size", defaultValue = "128", description = "images per step")
    int batchSize;

    @Option(names = "--steps", defaultValue = "30", description = "timed steps")
    int steps;

    @Option(names = "--warmup", defaultValue = "5", description = "untimed steps first")
    int warmup;

    @Option(
        names = "--threads",
        defaultValue = "0",
        description = "OpenMP threads (0: every core of this host)")
    int threads;

    @Option(
        names = "--engine",
        defaultValue = "auto",
        description = "auto|onednn|deeplearning4j: what computes the passes")
    String engine;

    @Option(
        names = "--precision",
        defaultValue = "fp32",
        description = "fp32|bf16: the number format of convolutions and dense layers")
    String precision;

    @Override
    public Integer call() {
      final StepBenchmark.Settings settings;
      try {
        settings =
            new StepBenchmark.Settings(
                model,
                batchSize,
                steps,
                warmup,
                threads,
                choice("--engine", engine, ComputeEngine.values()),
                choice("--precision", precision, Precision.values()));
      } catch (IllegalArgumentException e) {
        throw new ConfigurationException(e.getMessage());
      }
      System.out.println(StepBenchmark.run(settings).line());
      return 0;
    }
  }

  /** {@code lockstep parameter-server}: one standalone shard process. */
  @Command(
      name = "parameter-server",
      description =
          "Run a parameter server shard process on HOST:PORT (UDP; PORT+1 carries results) that"
              + " serves the jobs whose lockstep.ps.shard-servers list it and whose"
              + " lockstep.ps.secret-file holds the secret of --secret-file.")
  static final class ParameterServerShard implements Callable<Integer> {
    @Option(names = "--host", required = true, description = "address to bind, reachable by all")
    String host;

    @Option(names = "--port", required = true, description = "UDP port in [1024, 65534]")
    int port;

    @Option(
        names = "--jobs",
        defaultValue = "0",
        description = "exit after serving this many jobs; 0 serves until stopped")
    int jobs;

    @Option(
        names = "--secret-file",
        required = true,
        description =
            "at least 32 secret bytes, readable by the owner only; the jobs' drivers name the same"
                + " file in lockstep.ps.secret-file (make one with: head -c 32 /dev/urandom > F;"
                + " chmod 600 F)")
    Path secretFile;

    @Override
    public Integer call() {
      if (port < 1024 || port > 65534 || jobs < 0) {
        throw new ConfigurationException(
            "--port " + port + " must be in [1024, 65534] and --jobs " + jobs + " >= 0");
      }
      final byte[] secret;
      try {
        secret = FrameKey.readSecret(secretFile, "--secret-file");
      } catch (IllegalArgumentException e) {
        throw new ConfigurationException(e.getMessage());
      }
      return ShardServer.serve(host, port, jobs, secret);
    }
  }

  /** {@code lockstep models}. */
  @Command(
      name = "models",
      description = "List the zoo: NAME  input=CxHxW  classes=K  params=N (trainable parameters).")
  static final class Models implements Callable<Integer> {
    @Override
    public Integer call() {
      for (ModelZoo.Spec spec : ModelZoo.all()) {
        final JobConfig job =
            JobConfig.load(JobConfig.overrides(Map.of(Keys.MODEL_NAME.name(), spec.name())));
        final long trainable = ModelZoo.trainableParameters(ModelZoo.configuration(job, 1));
        System.out.printf(
            "%-16s input=%dx%dx%d  classes=%d  params=%d%n",
            spec.name(), spec.channels(), spec.height(), spec.width(), spec.classes(), trainable);
      }
      return 0;
    }
  }

  /** {@code lockstep config}. */
  @Command(name = "config", description = "Print every configuration key with default, unit, doc.")
  static final class PrintConfig implements Callable<Integer> {
    @Override
    public Integer call() {
      for (ConfigKey<?> key : Keys.all()) {
        System.out.printf(
            "%-32s %-12s default %-36s %s%s%n",
            key.name(),
            key.type(),
            key.defaultValue(),
            key.doc(),
            key.unit().isEmpty() ? "" : " [" + key.unit() + "]");
      }
      return 0;
    }
  }

  /** Where {@code bin/lockstep} keeps things: the project's root, else the working folder. */
  private static Path home() {
    return Path.of(System.getProperty("lockstep.home", "."));
  }

  /** The Spark home {@code mvn install} assembles in {@code spark-home/target/spark-home}. */
  private static Path defaultSparkHome() {
    return home().resolve("spark-home/target/spark-home");
  }

  /** {@code lockstep cluster}. */
  @Command(
      name = "cluster",
      description = "A Spark standalone cluster on 127.0.0.1 from the project's Spark jars.",
      subcommands = {Lockstep.ClusterStart.class, Lockstep.ClusterStop.class})
  static final class Cluster implements Runnable {
    @Override
    public void run() {
      CommandLine.usage(this, System.out);
    }
  }

  /** Options both cluster commands take. */
  static class ClusterFolder {
    @Option(
        names = "--dir",
        paramLabel = "DIR",
        description =
            "the cluster's folder: logs, worker folders, cluster.json (default: runs/cluster)")
    Path dir;

    Path dir() {
      return dir != null ? dir : home().resolve("runs/cluster");
    }
  }

  /** {@code lockstep cluster start}. */
  @Command(
      name = "start",
      description =
          "Start a Spark master and N workers (plain JVMs) and print the master's spark:// URL.")
  static final class ClusterStart extends ClusterFolder implements Callable<Integer> {
    @Option(names = "--workers", defaultValue = "2", description = "worker JVMs (default 2)")
    int workers;

    @Option(
        names = "--cores",
        defaultValue = "1",
        description = "cores each worker offers: executor slots (default 1)")
    int cores;

    @Option(
        names = "--memory",
        defaultValue = "3g",
        description = "memory each worker offers its executors (default 3g)")
    String memory;

    @Option(names = "--spark-home", paramLabel = "DIR", description = "a folder with Spark's jars/")
    Path sparkHome;

    @Option(
        names = "--timeout",
        defaultValue = "120",
        description = "seconds to wait for the master, then for the workers (default 120)")
    int timeoutSeconds;

    @Override
    public Integer call() {
      final StandaloneCluster.State state =
          StandaloneCluster.start(
              dir(),
              sparkHome != null ? sparkHome : defaultSparkHome(),
              workers,
              cores,
              memory,
              Duration.ofSeconds(timeoutSeconds));
      System.err.printf(
          "lockstep: Spark master and %d worker(s) up (logs in %s); stop them with"
              + " bin/lockstep cluster stop%n",
          state.workerPids().size(), dir());
      System.out.println(state.masterUrl());
      return 0;
    }
  }

  /** {@code lockstep cluster stop}. */
  @Command(
      name = "stop",
      description = "Stop the master, workers and executors that cluster start started.")
  static final class ClusterStop extends ClusterFolder implements Callable<Integer> {
    @Override
    public Integer call() {
      final int stopped = StandaloneCluster.stop(dir());
      System.out.printf(
          "lockstep: stopped %d cluster process(es) started from %s%n", stopped, dir());
      return 0;
    }
  }

  /** {@code lockstep submit}. */
  /**
   * Whether a Spark master runs on this machine's loopback interface (local mode, or a standalone
   * master at 127.0.0.1 or localhost, as {@code cluster start} makes), so its driver must be on
   * loopback too. Any other master's executors reach the driver at the address Spark finds for this
   * host, or at {@code SPARK_LOCAL_IP} when the user sets it.
   *
   * @param master a Spark master URL
   * @return true for a master on loopback
   */
  static boolean onLoopback(String master) {
    if (master.startsWith("local")) {
      return true;
    }
    if (!master.startsWith("spark://")) {
      return false;
    }
    for (String hostPort : master.substring("spark://".length()).split(",")) {
      final int colon = hostPort.lastIndexOf(':');
      final String host = colon < 0 ? hostPort : hostPort.substring(0, colon);
      if (!(host.equals("localhost")
          || host.startsWith("127.")
          || host.equals("[::1]")
          || host.equals("::1"))) {
        return false;
      }
    }
    return true;
  }

  @Command(
      name = "submit",
      description =
          "Train on a Spark cluster: spark-submit in client mode with the spark-submit jar and the"
              + " options executors need. Takes train's arguments: [JOB|FILE.conf] [flags].")
  static final class Submit implements Callable<Integer> {
    @Option(
        names = "--master",
        required = true,
        paramLabel = "URL",
        description = "the Spark master: spark://HOST:PORT, yarn, k8s://...")
    String master;

    @Option(
        names = "--executor-memory",
        defaultValue = "2g",
        description = "heap of each executor JVM (default 2g)")
    String executorMemory;

    @Option(
        names = "--conf",
        paramLabel = "KEY=VALUE",
        description = "a Spark setting for spark-submit (repeatable)")
    List<String> confs = List.of();

    @Option(names = "--spark-home", paramLabel = "DIR", description = "a folder with Spark's jars/")
    Path sparkHome;

    @Option(names = "--jar", paramLabel = "FILE", description = "the spark-submit jar")
    Path jar;

    @CommandLine.Unmatched List<String> trainArgs = new ArrayList<>();

    @Override
    public Integer call() throws Exception {
      final Path spark = sparkHome != null ? sparkHome : defaultSparkHome();
      StandaloneCluster.checkSparkHome(spark);
      final Path submitJar =
          jar != null ? jar : home().resolve("jobs/target/lockstep-jobs-0.1.0-SNAPSHOT-spark.jar");
      if (!Files.isRegularFile(submitJar)) {
        throw new ConfigurationException(
            submitJar
                + ": no spark-submit jar; build it with 'mvn install -DskipTests' or pass --jar");
      }
      for (String conf : confs) {
        if (conf.indexOf('=') <= 0) {
          throw new ConfigurationException("--conf " + conf + ": expected KEY=VALUE");
        }
      }
      final List<String> train = new ArrayList<>(List.of("train"));
      train.addAll(trainArgs);
      // the flags fail here, before any JVM starts, as they would in train
      final Train parsed = new Train();
      try {
        new CommandLine(parsed).parseArgs(trainArgs.toArray(String[]::new));
      } catch (CommandLine.ParameterException e) {
        throw new ConfigurationException("submit: " + e.getMessage());
      }
      final JobConfig config = parsed.config();
      if (!config.get(Keys.SPARK_MASTER).isEmpty()
          && !config.get(Keys.SPARK_MASTER).equals(master)) {
        throw new ConfigurationException(
            Keys.SPARK_MASTER.name()
                + "="
                + config.get(Keys.SPARK_MASTER)
                + " disagrees with --master "
                + master
                + "; give the master once");
      }
      final List<String> classPath = new ArrayList<>(List.of(spark.resolve("conf").toString()));
      final boolean yarn = YarnPreflight.isYarn(master);
      if (yarn) {
        // spark-submit finds the ResourceManager in these folders, on its class path
        final List<Path> hadoopConf = YarnPreflight.configurationDirectories(System.getenv());
        YarnPreflight.checkResourceManager(hadoopConf);
        hadoopConf.forEach(directory -> classPath.add(directory.toString()));
      }
      classPath.add(spark.resolve("jars") + "/*");
      final List<String> command = new ArrayList<>();
      command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
      command.add("-Xmx4g");
      command.add(SparkSettings.DRIVER_COLLECTOR_OPTION);
      command.add(SparkSettings.YOUNG_GENERATION_OPTION);
      command.addAll(SparkSettings.REQUIRED_JVM_OPTIONS);
      final String cache = System.getProperty("org.bytedeco.javacpp.cachedir");
      if (cache != null) {
        command.add("-Dorg.bytedeco.javacpp.cachedir=" + cache);
      }
      command.addAll(
          List.of(
              "-cp",
              String.join(":", classPath),
              "org.apache.spark.deploy.SparkSubmit",
              "--master",
              master,
              "--deploy-mode",
              "client",
              "--class",
              Lockstep.class.getName(),
              "--name",
              "lockstep " + config.get(Keys.JOB_NAME),
              "--executor-memory",
              executorMemory));
      if (cache != null && !yarn) {
        // executors on this machine share the driver's native-library cache (YARN's containers
        // keep JavaCPP's default, in their user's home)
        command.addAll(
            List.of(
                "--conf",
                "spark.executor.extraJavaOptions=-Dorg.bytedeco.javacpp.cachedir=" + cache));
      }
      for (String conf : confs) {
        command.addAll(List.of("--conf", conf));
      }
      command.add(submitJar.toString());
      command.addAll(train);
      final ProcessBuilder builder = new ProcessBuilder(command).inheritIO();
      builder.environment().put("SPARK_HOME", spark.toAbsolutePath().toString());
      builder.environment().put("SPARK_SCALA_VERSION", "2.13");
      if (onLoopback(master)) {
        // a cluster on this machine's loopback: the driver must be on it too
        builder.environment().putIfAbsent("SPARK_LOCAL_IP", "127.0.0.1");
      }
      SparkSettings.ALLOCATOR_ENVIRONMENT.forEach(builder.environment()::putIfAbsent);
      final Process process = builder.start();
      final Thread stopper = new Thread(process::destroy);
      Runtime.getRuntime().addShutdownHook(stopper);
      try {
        return process.waitFor();
      } finally {
        try {
          Runtime.getRuntime().removeShutdownHook(stopper);
        } catch (IllegalStateException shuttingDown) {
          // the hook is stopping spark-submit already
        }
      }
    }
  }
}
