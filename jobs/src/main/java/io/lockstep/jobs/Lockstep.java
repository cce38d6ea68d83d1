package io.lockstep.jobs;

import com.typesafe.config.Config;
import io.lockstep.conf.Compression;
import io.lockstep.conf.ComputeEngine;
import io.lockstep.conf.ConfigKey;
import io.lockstep.conf.ConfigurationException;
import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Keys;
import io.lockstep.conf.Transport;
import io.lockstep.driver.RunComparison;
import io.lockstep.driver.TrainingDriver;
import io.lockstep.driver.TrainingSummary;
import io.lockstep.ps.ShardServer;
import io.lockstep.ps.SyncBenchmark;
import io.lockstep.worker.StepBenchmark;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** The {@code lockstep} command line: {@code train}, {@code compare} and {@code config}. */
@Command(
    name = "lockstep",
    mixinStandardHelpOptions = true,
    version = "lockstep 0.1.0",
    description = "Data-parallel training of convolutional networks on Apache Spark.",
    subcommands = {
      Lockstep.Train.class,
      Lockstep.Compare.class,
      Lockstep.PrintConfig.class,
      Lockstep.Bench.class,
      Lockstep.ParameterServerShard.class
    })
public final class Lockstep implements Runnable {
  private static final String JOB_RESOURCES = "/io/lockstep/jobs/";

  /** The jobs shipped in this jar. */
  static final List<String> JOBS = List.of("fashion-mnist-lenet");

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
    final CommandLine cli = new CommandLine(new Lockstep());
    cli.setExecutionExceptionHandler(
        (e, commandLine, parseResult) -> {
          final Throwable root = rootCause(e);
          commandLine.getErr().println("lockstep: " + message(root));
          return e instanceof ConfigurationException ? 2 : 1;
        });
    return cli.execute(args);
  }

  private static Throwable rootCause(Throwable e) {
    Throwable cause = e;
    while (cause.getCause() != null
        && cause.getCause() != cause
        && !(cause instanceof ConfigurationException)) {
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
      final Path file = Path.of(job);
      if (!Files.isRegularFile(file)) {
        throw new ConfigurationException(job + ": no such job file");
      }
      try {
        return JobConfig.parse(Files.readString(file, StandardCharsets.UTF_8), job);
      } catch (IOException e) {
        throw new ConfigurationException(job + ": cannot read (" + e.getMessage() + ")");
      }
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

    @Option(names = "--set", description = "any configuration key: --set KEY=VALUE (repeatable)")
    List<String> sets = List.of();

    @Override
    public Integer call() {
      final Map<String, String> overrides = new LinkedHashMap<>();
      put(overrides, Keys.WORKERS, workers);
      put(overrides, Keys.EPOCHS, epochs);
      put(overrides, Keys.BATCH_SIZE, batchSize);
      put(overrides, Keys.SEED, seed);
      put(overrides, Keys.MAX_STEPS, maxSteps);
      put(overrides, Keys.OPTIMIZER, optimizer);
      put(overrides, Keys.LEARNING_RATE, learningRate);
      put(overrides, Keys.DATA_DIR, dataDir);
      put(overrides, Keys.RUN_DIR, runDir);
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
        final Path saved = Path.of(resume, TrainingDriver.JOB_FILE);
        if (!Files.isRegularFile(saved)) {
          throw new ConfigurationException(
              resume + ": not a run directory (no " + TrainingDriver.JOB_FILE + ")");
        }
        base = jobLayer(saved.toString());
        overrides.put(Keys.RUN_DIR.name(), resume);
      }
      final JobConfig config = JobConfig.load(base, JobConfig.overrides(overrides));
      final Path run =
          config.runDir().isEmpty()
              ? Path.of(
                  "runs",
                  config.jobName()
                      + "-"
                      + LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss")))
              : Path.of(config.runDir());
      final TrainingSummary summary = TrainingDriver.train(config, run, resume != null);
      System.out.printf(
          "%s: test accuracy %.4f after %d epoch(s), %.0f images/s, %.1f s; run in %s%n",
          summary.job(),
          summary.testAccuracy(),
          summary.epochs(),
          summary.imagesPerSecond(),
          summary.wallSeconds(),
          run);
      return 0;
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

    @Override
    public Integer call() {
      System.out.print(RunComparison.of(a, b, tolerance).describe());
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
        names = "--chunk-bytes",
        defaultValue = "65424",
        description = "payload of one chunk (default: the largest unfragmented at MTU 65504)")
    int chunkBytes;

    @Option(
        names = "--term-length",
        defaultValue = "1048576",
        description = "Aeron term length, bytes")
    int termLength;

    @Option(
        names = "--compression",
        defaultValue = "none",
        description = "none|fp16|bf16: how chunks are encoded, both ways")
    String compression;

    @Override
    public Integer call() throws Exception {
      final Compression encoding =
          switch (compression.toLowerCase(Locale.ROOT)) {
            case "none" -> Compression.NONE;
            case "fp16" -> Compression.FP16;
            case "bf16" -> Compression.BF16;
            default ->
                throw new ConfigurationException(
                    "--compression " + compression + ": expected none, fp16 or bf16");
          };
      final Transport chosen =
          switch (transport.toLowerCase(Locale.ROOT)) {
            case "ipc" -> Transport.IPC;
            case "udp" -> Transport.UDP;
            default ->
                throw new ConfigurationException(
                    "--transport " + transport + ": expected ipc or udp");
          };
      final SyncBenchmark.Settings settings;
      try {
        settings =
            new SyncBenchmark.Settings(
                parameters,
                workers,
                iterations,
                warmup,
                chosen,
                chunkBytes,
                termLength,
                shards,
                encoding);
      } catch (IllegalArgumentException e) {
        throw new ConfigurationException(e.getMessage());
      }
      System.out.println(SyncBenchmark.run(settings).line());
      return 0;
    }
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

    private ComputeEngine computeEngine() {
      return switch (engine.toLowerCase(Locale.ROOT)) {
        case "auto" -> ComputeEngine.AUTO;
        case "onednn" -> ComputeEngine.ONEDNN;
        case "deeplearning4j" -> ComputeEngine.DEEPLEARNING4J;
        default ->
            throw new ConfigurationException(
                "--engine " + engine + ": expected auto, onednn or deeplearning4j");
      };
    }

    @Override
    public Integer call() {
      final StepBenchmark.Settings settings;
      try {
        settings =
            new StepBenchmark.Settings(model, batchSize, steps, warmup, threads, computeEngine());
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
              + " serves the jobs whose lockstep.ps.shard-servers list it.")
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

    @Override
    public Integer call() {
      if (port < 1024 || port > 65534 || jobs < 0) {
        throw new ConfigurationException(
            "--port " + port + " must be in [1024, 65534] and --jobs " + jobs + " >= 0");
      }
      return ShardServer.serve(host, port, jobs);
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
}
