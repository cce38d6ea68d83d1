package io.lockstep.driver;

import com.google.gson.JsonObject;
import io.lockstep.conf.ComputeEngine;
import io.lockstep.conf.ConfigurationException;
import io.lockstep.conf.Elasticity;
import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Keys;
import io.lockstep.conf.Schedule;
import io.lockstep.conf.Transport;
import io.lockstep.data.DataException;
import io.lockstep.data.SliceSpan;
import io.lockstep.driver.Checkpoint.Progress;
import io.lockstep.models.ModelZoo;
import io.lockstep.models.Transfer;
import io.lockstep.ps.AeronDirectories;
import io.lockstep.ps.FrameKey;
import io.lockstep.ps.ParameterServer;
import io.lockstep.ps.ParameterServerException;
import io.lockstep.ps.RemoteShards;
import io.lockstep.ps.RunningServer;
import io.lockstep.ps.ServerAddress;
import io.lockstep.ps.ServerShards;
import io.lockstep.ps.TraceClock;
import io.lockstep.worker.ComputeDevice;
import io.lockstep.worker.ComputeThreads;
import io.lockstep.worker.Datasets;
import io.lockstep.worker.ModelState;
import io.lockstep.worker.ProcessResources;
import io.lockstep.worker.Replica;
import io.lockstep.worker.Samples;
import io.lockstep.worker.StageReport;
import io.lockstep.worker.StageTask;
import io.lockstep.worker.StepListener;
import io.lockstep.worker.TestMetric;
import io.lockstep.worker.Worker;
import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.NetworkInterface;
import java.net.SocketException;
import java.net.UnknownHostException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.StringJoiner;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.apache.spark.BarrierTaskContext;
import org.apache.spark.SparkConf;
import org.apache.spark.SparkContext;
import org.apache.spark.api.java.JavaSparkContext;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.util.ModelSerializer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import scala.Function1;
import scala.jdk.javaapi.CollectionConverters;
import scala.reflect.ClassTag;
import scala.reflect.ClassTag$;

/**
 * The Spark application: plans the run, starts the parameter server, runs the workers as barrier
 * stages (one per epoch, or one per checkpoint interval), checks that the replicas agree,
 * evaluates, and writes the run directory: {@code job.conf}, {@code metrics.jsonl} (a line per step
 * and per epoch), {@code timeline.json} (see {@link Timeline}), {@code checkpoint.zip} (see {@link
 * Checkpoint}), {@code model.zip}, {@code best-model.zip} (the best test accuracy so far), {@code
 * summary.json} and {@code report.html} (see {@link RunReport}).
 */
public final class TrainingDriver {
  private static final Logger LOG = LoggerFactory.getLogger(TrainingDriver.class);

  /**
   * JVM options every JVM that runs workers or the server needs: Aeron and Agrona reach into {@code
   * jdk.internal.misc}.
   */
  public static final List<String> REQUIRED_JVM_OPTIONS =
      List.of("--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED");

  /**
   * The environment every JVM that trains needs from glibc's allocator: a fixed threshold above
   * which {@code malloc} maps memory of its own and {@code free} returns it. By default glibc
   * raises the threshold to the size of each mapped block freed (up to 32 MiB), so the large
   * buffers that come and go all run long (Deeplearning4j's oneDNN reorders, batches, workspaces)
   * move into per-thread arenas, which keep their freed memory: resident memory then grows by tens
   * of MB per epoch without end though what is in use stays flat. The threshold is glibc's own
   * initial value, 128 KiB, held. {@code bin/lockstep} sets it for the driver; {@link #sparkConf}
   * for executors.
   */
  public static final Map<String, String> ALLOCATOR_ENVIRONMENT =
      Map.of("MALLOC_MMAP_THRESHOLD_", "131072");

  /**
   * The Java heap's young generation every JVM that trains is started with: at most 64 MB. What a
   * Lockstep JVM keeps on the heap is small (about 100 MB: the dataset's bytes, Spark's and
   * Deeplearning4j's objects) and it allocates little once training (a few hundred KB/s); models,
   * batches and gradients live in native memory. G1 sizes the young generation to a share of the
   * heap it has committed, and commits more after a few collections come close together, as the
   * large arrays of a stage's start and end make them. A young generation of hundreds of MB then
   * fills for the first time over tens of minutes at that allocation rate, and resident memory
   * rises with it epoch after epoch. Held at 64 MB, the heap's resident pages stay those of the
   * first epochs. {@code bin/lockstep} and {@code submit} start the driver with it; {@link
   * #sparkConf} adds it to the executors' options unless they size the young generation already.
   */
  public static final String YOUNG_GENERATION_OPTION = "-XX:MaxNewSize=64m";

  /**
   * The Java heap's regions in every JVM that trains: 4 MB, where G1 would give a heap of up to 2
   * GB (Spark's executors by default) 1 MB regions. G1 allocates every object of half a region or
   * more as a humongous object, straight in the old generation, and each such allocation above the
   * occupancy threshold starts a collection. A stage's result reaches the driver as Spark's 1 MB
   * serialization chunks, three sets of them per result (JFR, {@code
   * jdk.ObjectAllocationOutsideTLAB}: {@code SerializerHelper.serializeToChunkedBuffer}); with 1 MB
   * regions every chunk was humongous, a stage's end started collections two at a time, and G1
   * answered their pause-time ratio by committing hundreds of MB more heap, which the chunks then
   * walked through: an executor's resident memory rose about 15 MB an epoch with a stage every 50
   * steps. With 4 MB regions the chunks are young objects like any other. {@code bin/lockstep} and
   * {@code submit} start the driver with it; {@link #sparkConf} adds it to the executors' options
   * unless they set the region size already.
   */
  public static final String HEAP_REGION_OPTION = "-XX:G1HeapRegionSize=4m";

  /**
   * Spark cuts a broadcast into blocks of {@code spark.broadcast.blockSize} and allocates each
   * block whole while it serializes (4 MB by default). Every stage broadcasts its task, and every
   * new state a stage starts from is broadcast too, so each stage allocated several 4 MB blocks:
   * humongous objects in 4 MB regions (anything over half a region), allocated outside the young
   * generation, which start collections of their own ("G1 Humongous Allocation" in a local run's GC
   * log). Blocks of 1 MB are young objects like any other. A user's setting is kept.
   */
  static final String BROADCAST_BLOCK_KEY = "spark.broadcast.blockSize";

  static final String BROADCAST_BLOCK_SIZE = "1m";

  /** The job file a run directory keeps, for {@code --resume}. */
  public static final String JOB_FILE = "job.conf";

  /** One line per step: see {@link StepMetrics}. */
  public static final String METRICS_FILE = "metrics.jsonl";

  /** The model after the last step. */
  public static final String MODEL_FILE = "model.zip";

  /** The model after the epoch with the best test accuracy. */
  public static final String BEST_MODEL_FILE = "best-model.zip";

  /** The run's summary. */
  public static final String SUMMARY_FILE = "summary.json";

  /**
   * Where the scratch baseline of a transfer run trains ({@code lockstep.model.scratch-baseline}).
   */
  public static final String SCRATCH_DIR = "scratch";

  /** {@code local}, {@code local[N]}, {@code local[*]}, {@code local[N, F]}: N in group 1. */
  private static final Pattern LOCAL_MASTER =
      Pattern.compile("local(?:\\[\\s*(\\*|\\d+)\\s*(?:,\\s*\\d+\\s*)?\\])?");

  /** How long a failed stage's retry waits for Spark to count a lost executor's slots out. */
  private static final Duration LOST_EXECUTOR_GRACE = Duration.ofSeconds(3);

  /** How often Spark checks for a barrier stage's slots. */
  private static final int BARRIER_CHECK_SECONDS = 5;

  private TrainingDriver() {}

  /**
   * Refuses a run directory a new run must not write into: a path that is a file, or the directory
   * of an earlier run (its checkpoint, model or summary), which is never overwritten; a resumed run
   * continues in its own directory.
   *
   * @param runDir where the run's files would go
   * @param resume whether the run continues the one in {@code runDir}
   * @throws ConfigurationException naming the path and what to do instead
   */
  public static void checkRunDirectory(Path runDir, boolean resume) {
    if (Files.exists(runDir) && !Files.isDirectory(runDir)) {
      throw new ConfigurationException(
          runDir + ": a file, not a run directory; give --run-dir a new or empty directory");
    }
    if (resume) {
      return;
    }
    for (String file : List.of(SUMMARY_FILE, MODEL_FILE, Checkpoint.FILE)) {
      if (Files.exists(runDir.resolve(file))) {
        throw new ConfigurationException(
            String.format(
                "%s holds a run (%s), which is never overwritten; give --run-dir a new directory,"
                    + " or continue that run with --resume %s",
                runDir, file, runDir));
      }
    }
  }

  /**
   * Trains the job to the end, from the start or from the run directory's checkpoint.
   *
   * @param job the validated job
   * @param runDir where the run's files go; created if missing
   * @param resume whether to continue from {@code runDir/checkpoint.zip}
   * @return the summary, also written to {@code runDir/summary.json}
   */
  public static TrainingSummary train(JobConfig job, Path runDir, boolean resume) {
    warnOfAllocator();
    final long startNs = System.nanoTime();
    final String master = master(job);
    checkLocalSlots(job, master);
    ComputeThreads.configure(
        job.get(Keys.WORKER_THREADS), master.startsWith("local") ? job.get(Keys.WORKERS) : 1);
    final byte[] secret = secret(job);
    final Samples test = Datasets.test(job);
    final int trainSamples = Datasets.training(job).count();
    if (trainSamples < job.get(Keys.BATCH_SIZE)) {
      throw new ConfigurationException(
          trainSamples == 0
              ? String.format(
                  "the training set (%s=%s, %s=%s) has no samples; point %s at the data",
                  Keys.DATA_FORMAT.name(),
                  Keys.lowerName(job.get(Keys.DATA_FORMAT)),
                  Keys.DATA_DIR.name(),
                  job.get(Keys.DATA_DIR),
                  Keys.DATA_DIR.name())
              : String.format(
                  "%s=%d is larger than the training set (%d samples); lower it to at most %d",
                  Keys.BATCH_SIZE.name(), job.get(Keys.BATCH_SIZE), trainSamples, trainSamples));
    }
    final int stepsPerEpoch = job.stepsPerEpoch(trainSamples);
    final long totalSteps = (long) job.get(Keys.EPOCHS) * stepsPerEpoch;
    final ComputationGraphConfiguration configuration = ModelZoo.configuration(job, totalSteps);
    final Replica initial = Replica.create(configuration, job.get(Keys.WORKER_ENGINE));
    if (job.get(Keys.BATCHNORM_SYNC) && !initial.hasSynchronizedStatistics()) {
      throw new ConfigurationException(
          Keys.BATCHNORM_SYNC.name()
              + "=true, but model "
              + job.get(Keys.MODEL_NAME)
              + " has no BatchNorm layers; remove the setting or choose a model with BatchNorm");
    }
    final int parameters = initial.parameterCount();
    final String engine = initial.engine();
    final Checkpoint checkpoint = resume ? Checkpoint.read(runDir.resolve(Checkpoint.FILE)) : null;
    if (checkpoint == null && !job.get(Keys.MODEL_PRETRAINED).isBlank()) {
      Transfer.loadBody(
          initial.network(), job.get(Keys.MODEL_PRETRAINED), job.get(Keys.MODEL_NAME));
    }
    final RunState run;
    int resumedAt = 0;
    if (checkpoint == null) {
      run = RunState.start(job, stepsPerEpoch, initial.snapshot());
    } else {
      final Progress saved = checkpoint.progress();
      checkResumable(job, saved, parameters, checkpoint.parameters().length, runDir, stepsPerEpoch);
      final ModelState state = checkpoint.state(configuration.toJson());
      try (Replica fits = Replica.restore(state, ComputeEngine.DEEPLEARNING4J)) {
        fits.parameterCount();
      } catch (RuntimeException e) {
        throw new ConfigurationException(
            runDir.resolve(Checkpoint.FILE)
                + ": its optimizer state does not fit the job ("
                + e.getMessage()
                + "); resume with the run's own settings");
      }
      run = RunState.resume(job, stepsPerEpoch, saved, state);
      resumedAt = saved.iteration();
    }
    initial.close();
    try {
      Files.createDirectories(runDir);
    } catch (IOException e) {
      throw new UncheckedIOException(runDir + ": cannot create the run directory", e);
    }
    RunFiles.writeText(runDir.resolve(JOB_FILE), job.render());
    final Path metricsFile = runDir.resolve(METRICS_FILE);
    // the earlier steps' lines of a resumed run, then every stage's appended
    RunFiles.writeLines(metricsFile, resume ? metricsBefore(metricsFile, resumedAt) : List.of());
    final Timeline timeline =
        new Timeline(
            job.get(Keys.JOB_NAME),
            job.get(Keys.RUN_TIMELINE_STEPS),
            TraceClock.toMicros(startNs),
            !job.get(Keys.PS_SHARD_SERVERS).isEmpty());
    ServerAddress address;
    LOG.info(
        "training {}: model {} ({} parameters, computed by {}), {} workers on {}, global batch {},"
            + " {} epochs of {} steps{}",
        job.get(Keys.JOB_NAME),
        job.get(Keys.MODEL_NAME),
        parameters,
        engine,
        job.get(Keys.WORKERS),
        master,
        job.get(Keys.BATCH_SIZE),
        job.get(Keys.EPOCHS),
        stepsPerEpoch,
        checkpoint == null
            ? ""
            : ", resuming at epoch " + (run.epoch() + 1) + " step " + run.step());
    final TestMetric metric = TestMetric.of(job, test);
    final long rejected;
    long rejectedBefore = 0;
    int retries = 0;
    int stageWorkers = job.get(Keys.WORKERS);
    // whether the cluster ever placed a stage's every task: a run shrinks only when slots it had
    // are lost, and a cluster that never had enough for the job's workers is its configuration's
    // error
    boolean hadEverySlot = false;
    final WorkerSpans workerSpans = new WorkerSpans();
    RunningServer server = null;
    try (JavaSparkContext spark = new JavaSparkContext(sparkConf(job, master));
        SharedState shared = new SharedState(spark)) {
      final EpochProgress progress =
          EpochProgress.start(spark, job.get(Keys.RUN_PROGRESS), job.get(Keys.WORKERS));
      // a failed stage's other tasks are interrupted, not left waiting out the step timeout
      // beside the stage that runs again (their exchange stops at an interrupt)
      spark.setLocalProperty("spark.job.interruptOnCancel", "true");
      final String serverHost = serverHost(job, master, spark.getConf());
      address = serverAddress(job, serverHost, parameters, secret, job.get(Keys.WORKERS));
      server = launchServer(job, serverHost, address, run.model().iteration());
      while (!run.finished()) {
        final int epoch = run.epoch();
        List<StageReport> lastReports = List.of();
        while (run.step() < stepsPerEpoch) {
          final int step = run.step();
          final int to = stageEnd(job, epoch, stepsPerEpoch, step);
          final String description =
              job.get(Keys.JOB_NAME)
                  + ": epoch "
                  + (epoch + 1)
                  + "/"
                  + job.get(Keys.EPOCHS)
                  + ", steps "
                  + (step + 1)
                  + "-"
                  + to
                  + "/"
                  + stepsPerEpoch;
          final long stageStartNs = System.nanoTime();
          progress.beginStage(
              "epoch " + (epoch + 1) + "/" + job.get(Keys.EPOCHS), step, to, stepsPerEpoch);
          StageTask task = null;
          List<StageReport> reports = null;
          int shrinkTo = 0;
          for (int attempt = 0; reports == null; attempt++) {
            final int workers =
                shrinkTo > 0 ? shrinkTo : stageWorkers(job, stageWorkers, slots(spark), false);
            shrinkTo = 0;
            if (workers != stageWorkers) {
              if (workers == job.get(Keys.WORKERS)) {
                LOG.info(
                    "{}: the cluster has task slots for {} workers again; running on all {}"
                        + " workers from step {}",
                    description,
                    slots(spark),
                    workers,
                    run.model().iteration());
              } else {
                LOG.warn(
                    "{}: the cluster has task slots for {} workers; running on {} of {} workers"
                        + " from step {}, worker 0 computing slices 1-{} of each batch as"
                        + " micro-batches",
                    description,
                    slots(spark),
                    workers,
                    job.get(Keys.WORKERS),
                    run.model().iteration(),
                    SliceSpan.of(0, workers, job.get(Keys.WORKERS)).count());
              }
              stageWorkers = workers;
              progress.runOn(workers);
              if (server != null) {
                rejectedBefore += server.rejectedFrames();
                server.close();
                server = null;
              }
            }
            if (server == null) {
              address = serverAddress(job, serverHost, parameters, secret, workers);
              server = launchServer(job, serverHost, address, run.model().iteration());
            }
            task =
                new StageTask(
                    job,
                    shared.source(run.model()),
                    server.shards(),
                    workers,
                    epoch,
                    stepsPerEpoch,
                    step,
                    to);
            final String attemptDescription =
                description + (attempt == 0 ? "" : ", retry " + attempt);
            // the job's and its stage's names in Spark's UI, instead of "collect at ..."
            spark.setJobDescription(attemptDescription);
            spark.setCallSite(attemptDescription);
            try {
              final List<StageReport> collected =
                  runBarrierStage(spark, task, progress.listener(epoch, stepsPerEpoch));
              server.checkHealthy();
              reports = collected;
            } catch (Exception e) { // Spark's SparkException is checked, thrown undeclared
              if (slotsMissing(e)) {
                final int fewer = stageWorkers(job, workers, slots(spark), true);
                if (hadEverySlot && fewer < workers && attempt < job.get(Keys.STAGE_RETRIES)) {
                  // executors lost for good: the next attempt runs on those that remain
                  LOG.warn(
                      "{}: the cluster offered fewer than {} task slots for {} s",
                      description,
                      workers,
                      job.get(Keys.CONNECT_TIMEOUT).toSeconds());
                  retries++;
                  shrinkTo = fewer;
                  continue;
                }
                final String refusal = job.shrinkRefusal();
                throw new ConfigurationException(
                    String.format(
                        "%s=%d needs %d task slots (one core each) and the cluster at %s offered"
                            + " fewer for %d s; start more workers or executors, or lower %s%s",
                        Keys.WORKERS.name(),
                        job.get(Keys.WORKERS),
                        workers,
                        master,
                        job.get(Keys.CONNECT_TIMEOUT).toSeconds(),
                        Keys.WORKERS.name(),
                        refusal == null ? "" : " (the run does not shrink: " + refusal + ")"));
              }
              // its tasks were placed: slots missing later were lost, not never there
              hadEverySlot = true;
              final RuntimeException refused = refusedByWorker(e);
              if (refused != null) {
                throw refused;
              }
              // The server names the worker and step that failed; Spark's barrier error does not.
              final RuntimeException failure = named(server, e);
              if (attempt == job.get(Keys.STAGE_RETRIES) || !retryable(e) || !retryable(failure)) {
                throw failure;
              }
              LOG.warn(
                  "{}: the stage failed ({}); running it again from step {} (its first, the last"
                      + " checkpoint) with a new parameter server, retry {} of {}",
                  description,
                  failure.getMessage(),
                  run.model().iteration(),
                  attempt + 1,
                  job.get(Keys.STAGE_RETRIES));
              retries++;
              rejectedBefore += server.rejectedFrames();
              server.close();
              server = null;
              // the executors of a lost host: gone from Spark's count before the stage runs again
              awaitLostExecutors(spark, workers);
            }
          }
          hadEverySlot = true;
          final long stageEndNs = System.nanoTime();
          final double seconds = (stageEndNs - stageStartNs) / 1e9;
          checkReplicasAgree(reports, task);
          timeline.stage(
              description,
              TraceClock.toMicros(stageStartNs),
              TraceClock.toMicros(stageEndNs),
              task.firstGlobalStep(),
              epoch,
              reports,
              server.drainSpans());
          run.addStage(reports, seconds, to);
          lastReports = reports;
          workerSpans.add(task.firstGlobalStep(), task.toStep() - task.fromStep(), reports.size());
          final List<String> lines = new ArrayList<>();
          for (StepMetrics line : StepMetrics.of(task.firstGlobalStep(), epoch, reports)) {
            lines.add(RunFiles.JSON.toJson(line));
          }
          RunFiles.appendLines(metricsFile, lines);
          timeline.write(runDir.resolve(Timeline.FILE));
          if (run.step() < stepsPerEpoch) {
            try (Replica checkpointed =
                Replica.restore(run.model(), ComputeEngine.DEEPLEARNING4J)) {
              Checkpoint.write(runDir.resolve(Checkpoint.FILE), checkpointed, run.progress());
            }
          }
        }
        final RunState.EndedEpoch ended;
        try (Replica trained = Replica.restore(run.model(), ComputeEngine.DEEPLEARNING4J)) {
          final long evaluationNs = System.nanoTime();
          ended = run.endEpoch(metric.score(trained.network()));
          timeline.evaluation(epoch, TraceClock.toMicros(evaluationNs), TraceClock.nowMicros());
          final List<ProcessResources> resources =
              resources(spark.getConf().get("spark.driver.host", "localhost"), lastReports);
          RunFiles.appendLines(
              metricsFile,
              List.of(
                  RunFiles.JSON.toJson(
                      new EpochMetrics(
                          EpochMetrics.TYPE,
                          epoch + 1,
                          (long) (epoch + 1) * stepsPerEpoch,
                          ended.trainLoss(),
                          metric.name(),
                          ended.score(),
                          ended.seconds(),
                          ended.imagesPerSecond(),
                          resources))));
          timeline.write(runDir.resolve(Timeline.FILE));
          if (ended.best()) {
            writeModel(runDir.resolve(BEST_MODEL_FILE), trained);
          }
          final long globalStep = (long) (epoch + 1) * stepsPerEpoch;
          final int every = job.get(Keys.CHECKPOINT_EVERY_STEPS);
          if (job.get(Keys.CHECKPOINT_AT_EPOCH_END)
              || epoch + 1 == job.get(Keys.EPOCHS)
              || (every > 0 && globalStep % every == 0)) {
            Checkpoint.write(runDir.resolve(Checkpoint.FILE), trained, run.progress());
          }
        }
        final String epochSummary =
            String.format(
                "epoch %d/%d: train loss %.4f, %s %.4f, %.1f s in stages (set-up included), %.0f images/s",
                epoch + 1,
                job.get(Keys.EPOCHS),
                ended.trainLoss(),
                metric.name().replace('_', ' '),
                ended.score(),
                ended.seconds(),
                ended.imagesPerSecond());
        progress.endEpoch(ended.samples(), ended.lossSum(), ended.seconds());
        LOG.info(epochSummary);
      }
      rejected = rejectedBefore + server.rejectedFrames();
    } finally {
      if (server != null) {
        server.close();
      }
      // the workers of local mode ran in this JVM: free what they keep between stages
      Worker.releaseReplicas();
    }
    final ModelState state = run.model();
    final double stepSeconds = run.phases().secondsPerWorker(job.get(Keys.WORKERS));
    final TrainingSummary summary =
        new TrainingSummary(
            job.get(Keys.JOB_NAME),
            job.get(Keys.MODEL_NAME),
            job.get(Keys.WORKERS),
            job.get(Keys.BATCH_SIZE),
            job.get(Keys.EPOCHS),
            run.model().iteration(),
            parameters,
            job.get(Keys.SEED),
            run.score(),
            run.bestAccuracy(),
            run.bestEpoch(),
            run.samples() / stepSeconds,
            (System.nanoTime() - startNs) / 1e9,
            run.trainSeconds(),
            stepSeconds,
            run.samples() / run.trainSeconds(),
            master,
            job.get(Keys.TRANSPORT).name().toLowerCase(java.util.Locale.ROOT),
            job.get(Keys.PS_MODE).name().toLowerCase(java.util.Locale.ROOT).replace('_', '-'),
            job.get(Keys.PS_COMPRESSION)
                .name()
                .toLowerCase(java.util.Locale.ROOT)
                .replace('_', '-'),
            address.key().tags(),
            job.overlapsBackward(),
            engine,
            run.phases().perWorker(job.get(Keys.WORKERS)),
            rejected,
            retries,
            String.format("%08x", Replica.crc32(state.parameters())),
            resumedAt,
            run.history(),
            job.get(Keys.MODEL_PRETRAINED).isBlank() ? null : job.get(Keys.MODEL_PRETRAINED),
            job.get(Keys.MODEL_FREEZE_LAYERS),
            null,
            metric.name(),
            workerSpans.list());
    try (Replica last = Replica.restore(state, ComputeEngine.DEEPLEARNING4J)) {
      writeModel(runDir.resolve(MODEL_FILE), last);
    }
    writeSummary(runDir, summary);
    writeReport(runDir);
    if (!job.get(Keys.MODEL_SCRATCH_BASELINE)) {
      return summary;
    }
    final Path scratchDir = runDir.resolve(SCRATCH_DIR);
    LOG.info(
        "{}: the same training from random weights, for comparison, in {}",
        job.get(Keys.JOB_NAME),
        scratchDir);
    final TrainingSummary scratch =
        train(
            job.with(
                Map.of(
                    Keys.MODEL_PRETRAINED.name(), "",
                    Keys.MODEL_FREEZE_LAYERS.name(), "0",
                    Keys.MODEL_SCRATCH_BASELINE.name(), "false",
                    Keys.RUN_DIR.name(), scratchDir.toString())),
            scratchDir,
            false);
    final TrainingSummary compared = summary.withScratchTestAccuracy(scratch.testAccuracy());
    writeSummary(runDir, compared);
    return compared;
  }

  /** The run's report; its failure leaves the run's other files complete, and says so. */
  private static void writeReport(Path runDir) {
    try {
      LOG.info("report: {}", RunReport.write(runDir).toUri());
    } catch (RuntimeException e) {
      throw new IllegalStateException(
          runDir.resolve(RunReport.FILE)
              + ": not written ("
              + e.getMessage()
              + "); the run's model, metrics and summary are complete, write the report with"
              + " lockstep report "
              + runDir,
          e);
    }
  }

  private static void writeSummary(Path runDir, TrainingSummary summary) {
    RunFiles.writeText(
        runDir.resolve(SUMMARY_FILE),
        RunFiles.JSON.newBuilder().setPrettyPrinting().create().toJson(summary.toJson()) + "\n");
  }

  /**
   * Where the stage starting at {@code step} ends: the epoch's end, or the next global step that is
   * a multiple of the checkpoint interval.
   */
  static int stageEnd(JobConfig job, int epoch, int stepsPerEpoch, int step) {
    final int every = job.get(Keys.CHECKPOINT_EVERY_STEPS);
    if (every == 0) {
      return stepsPerEpoch;
    }
    final long global = (long) epoch * stepsPerEpoch + step;
    final long next = (global / every + 1) * every;
    return (int) Math.min(stepsPerEpoch, step + (next - global));
  }

  private static void checkResumable(
      JobConfig job,
      Progress saved,
      int parameters,
      int savedParameters,
      Path runDir,
      int stepsPerEpoch) {
    final String where = runDir.resolve(Checkpoint.FILE) + ": ";
    if (!saved.model().equals(job.get(Keys.MODEL_NAME)) || savedParameters != parameters) {
      throw new ConfigurationException(
          String.format(
              "%sholds model %s (%d parameters), the job asks for %s (%d); resume with the same %s",
              where,
              saved.model(),
              savedParameters,
              job.get(Keys.MODEL_NAME),
              parameters,
              Keys.MODEL_NAME.name()));
    }
    if (saved.seed() != job.get(Keys.SEED)
        || saved.batchSize() != job.get(Keys.BATCH_SIZE)
        || saved.stepsPerEpoch() != stepsPerEpoch
        || !saved.optimizer().equals(job.get(Keys.OPTIMIZER).name())) {
      throw new ConfigurationException(
          String.format(
              "%swas trained with %s=%d, %s=%d, %s=%s and %d steps per epoch; a resumed run keeps"
                  + " its data order, global batch, epoch length and optimizer, so drop the"
                  + " overrides of %s, %s, %s, %s and %s",
              where,
              Keys.SEED.name(),
              saved.seed(),
              Keys.BATCH_SIZE.name(),
              saved.batchSize(),
              Keys.OPTIMIZER.name(),
              saved.optimizer().toLowerCase(java.util.Locale.ROOT),
              saved.stepsPerEpoch(),
              Keys.SEED.name(),
              Keys.BATCH_SIZE.name(),
              Keys.MAX_STEPS.name(),
              Keys.DATA_DIR.name(),
              Keys.OPTIMIZER.name()));
    }
    final boolean finished = Files.isRegularFile(runDir.resolve(MODEL_FILE));
    if (saved.epoch() > job.get(Keys.EPOCHS)
        || (saved.epoch() == job.get(Keys.EPOCHS) && finished)) {
      throw new ConfigurationException(
          String.format(
              "%sthe run has already trained %d epochs; ask for more with --epochs N (N > %d)",
              where, saved.epoch(), saved.epoch()));
    }
    if (job.get(Keys.SCHEDULE) == Schedule.COSINE
        && saved.totalSteps() != (long) job.get(Keys.EPOCHS) * stepsPerEpoch) {
      LOG.warn(
          "the cosine schedule spans the run's steps: {} when the checkpoint was written, {} now;"
              + " the rate from here follows the new length, so this run will not equal one"
              + " started with --epochs {}",
          saved.totalSteps(),
          (long) job.get(Keys.EPOCHS) * stepsPerEpoch,
          job.get(Keys.EPOCHS));
    }
    if (saved.workers() != job.get(Keys.WORKERS)) {
      LOG.warn(
          "resuming with {} workers, the checkpoint was written by {}: same trajectory within"
              + " float rounding, not bit for bit",
          job.get(Keys.WORKERS),
          saved.workers());
    }
  }

  /**
   * The metrics lines of the steps up to {@code globalStep} and of the epochs that ended by then; a
   * resumed run rewrites the rest.
   */
  private static List<String> metricsBefore(Path file, int globalStep) {
    final List<String> kept = new ArrayList<>();
    if (!Files.isRegularFile(file)) {
      return kept;
    }
    try {
      for (JsonObject line : StepMetrics.lines(file)) {
        if (line.get("step").getAsLong() <= globalStep) {
          kept.add(RunFiles.JSON.toJson(line));
        }
      }
    } catch (IOException | RuntimeException e) {
      throw new IllegalArgumentException(
          file
              + ": cannot read the run's metrics ("
              + e.getMessage()
              + "); move it away to resume"
              + " without the earlier steps' lines",
          e);
    }
    return kept;
  }

  private static void writeModel(Path target, Replica replica) {
    try {
      RunFiles.writeAtomically(
          target, tmp -> ModelSerializer.writeModel(replica.network(), tmp.toFile(), true));
    } catch (IOException e) {
      throw new UncheckedIOException(
          target + ": cannot write the model (" + e.getMessage() + ")", e);
    }
  }

  /**
   * The secret of {@code lockstep.ps.secret-file}, read once before anything starts; null when the
   * servers run in this JVM.
   */
  private static byte[] secret(JobConfig job) {
    if (job.get(Keys.PS_SECRET_FILE).isBlank()) {
      return null;
    }
    try {
      return FrameKey.readSecret(Path.of(job.get(Keys.PS_SECRET_FILE)), Keys.PS_SECRET_FILE.name());
    } catch (IllegalArgumentException e) {
      throw new ConfigurationException(e.getMessage());
    }
  }

  /**
   * The address the parameter server binds and workers reach it at: {@code lockstep.ps.interface}'s
   * IPv4 address, else {@code lockstep.ps.host}, else the driver's own, 127.0.0.1 in local mode and
   * on a cluster the address of {@code spark.driver.host}, which Spark's executors reach already.
   * Over UDP the address must be one of this host's.
   *
   * @throws ConfigurationException when the interface or the address is not this host's
   */
  static String serverHost(JobConfig job, String master, SparkConf conf) {
    if (!job.get(Keys.PS_INTERFACE).isEmpty()) {
      return interfaceAddress(job.get(Keys.PS_INTERFACE));
    }
    final String host;
    if (!job.get(Keys.PS_HOST).isEmpty()) {
      host = job.get(Keys.PS_HOST);
    } else if (LOCAL_MASTER.matcher(master).matches()) {
      host = "127.0.0.1";
    } else {
      host = conf.get("spark.driver.host", "127.0.0.1");
    }
    if (job.get(Keys.TRANSPORT) != Transport.UDP) {
      return host;
    }
    // the setting that named the host, for the messages
    final String named =
        (job.get(Keys.PS_HOST).isEmpty() ? "spark.driver.host=" : Keys.PS_HOST.name() + "=") + host;
    final InetAddress address;
    try {
      address = InetAddress.getByName(host);
    } catch (UnknownHostException e) {
      throw new ConfigurationException(
          named
              + " does not resolve on the driver; set "
              + Keys.PS_HOST.name()
              + " to the driver's address on the cluster network");
    }
    try {
      if (!address.isLoopbackAddress() && NetworkInterface.getByInetAddress(address) == null) {
        throw new ConfigurationException(
            named
                + " ("
                + address.getHostAddress()
                + ") is no address of the driver's host, whose addresses are "
                + hostAddresses()
                + "; set "
                + Keys.PS_HOST.name()
                + " to one the executors reach, or "
                + Keys.PS_INTERFACE.name()
                + " to its interface");
      }
    } catch (SocketException e) {
      throw new UncheckedIOException(e);
    }
    return address.getHostAddress();
  }

  /**
   * The gradient chunk: {@code lockstep.ps.chunk-size} when set, else the largest that crosses the
   * network unfragmented: the largest Aeron frame over IPC; over UDP, what one datagram on the
   * server interface's MTU carries, so no gradient is IP-fragmented on the way.
   */
  static int chunkBytes(JobConfig job, String host) {
    if (job.get(Keys.PS_CHUNK_SIZE) != 0) {
      return job.get(Keys.PS_CHUNK_SIZE).intValue();
    }
    if (job.get(Keys.TRANSPORT) != Transport.UDP) {
      return (int) JobConfig.largestChunkBytes(job.get(Keys.PS_TERM_LENGTH));
    }
    try {
      final NetworkInterface network =
          NetworkInterface.getByInetAddress(InetAddress.getByName(host));
      final int mtu = network == null ? 1500 : network.getMTU();
      return (int) JobConfig.chunkBytesForMtu(mtu, job.get(Keys.PS_TERM_LENGTH));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** The first IPv4 address of the interface {@code name}. */
  private static String interfaceAddress(String name) {
    try {
      final NetworkInterface network = NetworkInterface.getByName(name);
      if (network == null) {
        throw new ConfigurationException(
            Keys.PS_INTERFACE.name()
                + "="
                + name
                + ": no such interface on the driver's host; it has "
                + hostAddresses());
      }
      return network
          .inetAddresses()
          .filter(Inet4Address.class::isInstance)
          .map(InetAddress::getHostAddress)
          .findFirst()
          .orElseThrow(
              () ->
                  new ConfigurationException(
                      Keys.PS_INTERFACE.name()
                          + "="
                          + name
                          + " has no IPv4 address; the driver's host has "
                          + hostAddresses()));
    } catch (SocketException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** This host's interfaces and their addresses, for an error message. */
  private static String hostAddresses() {
    final List<NetworkInterface> networks;
    try {
      networks = Collections.list(NetworkInterface.getNetworkInterfaces());
    } catch (SocketException e) {
      return "(interfaces unreadable: " + e.getMessage() + ")";
    }
    final StringJoiner all = new StringJoiner(", ");
    for (NetworkInterface network : networks) {
      final String addresses =
          network
              .inetAddresses()
              .filter(Inet4Address.class::isInstance)
              .map(InetAddress::getHostAddress)
              .collect(Collectors.joining(" "));
      all.add(network.getName() + (addresses.isEmpty() ? "" : " " + addresses));
    }
    return all.toString();
  }

  /**
   * A new parameter server's address, under a job id and frame key of its own (its frames are told
   * apart): a random key for servers in this JVM (none where {@code lockstep.ps.frame-tags} leaves
   * the transport's frames untagged), else the one the shard processes derive from the shared
   * secret.
   */
  private static ServerAddress serverAddress(
      JobConfig job, String host, int parameters, byte[] secret, int workers) {
    final long jobId = new SecureRandom().nextLong();
    return new ServerAddress(
            job.get(Keys.TRANSPORT),
            aeronDirectory(jobId),
            host,
            job.get(Keys.PS_PORT),
            job.get(Keys.PS_TERM_LENGTH).intValue(),
            chunkBytes(job, host),
            jobId,
            workers,
            parameters,
            secret != null
                ? FrameKey.forJob(secret, jobId)
                : job.get(Keys.PS_FRAME_TAGS).on(job.get(Keys.TRANSPORT))
                    ? FrameKey.random()
                    : FrameKey.none())
        .withMode(job.get(Keys.PS_MODE), job.get(Keys.PS_STALENESS));
  }

  /**
   * Whether a failed stage may succeed when run again: not when a worker found the data or the
   * configuration wrong, which a retry would only find again.
   */
  private static boolean retryable(Throwable e) {
    for (Throwable cause = e; cause != null; cause = cause.getCause()) {
      if (cause instanceof ConfigurationException
          || cause instanceof DataException
          || cause instanceof ParameterServerException reported && reported.permanent()) {
        return false;
      }
      if (cause.getCause() == cause) {
        break;
      }
    }
    return true;
  }

  /**
   * What a failed stage reports: the server's account when it has one (it names the worker and
   * step), else Spark's.
   */
  private static RuntimeException named(RunningServer server, Exception e) {
    try {
      server.checkHealthy();
      return e instanceof RuntimeException runtime
          ? runtime
          : new IllegalStateException(e.getMessage(), e);
    } catch (RuntimeException failure) {
      failure.addSuppressed(e);
      return failure;
    }
  }

  /**
   * Starts the job's parameter server: {@code lockstep.ps.shards} shards in this JVM, or the
   * standalone shard processes of {@code lockstep.ps.shard-servers}, configured for this job.
   */
  private static RunningServer launchServer(
      JobConfig job, String host, ServerAddress address, long firstStep) {
    if (!job.get(Keys.PS_SHARD_SERVERS).isEmpty()) {
      return RemoteShards.configure(
          new RemoteShards.Context()
              .servers(job.get(Keys.PS_SHARD_SERVERS))
              .address(address)
              .replyHost(host)
              .stepTimeout(job.get(Keys.STEP_TIMEOUT))
              .connectTimeout(job.get(Keys.CONNECT_TIMEOUT))
              .firstStep(firstStep));
    }
    final ServerShards shards;
    try {
      shards = ServerShards.split(address, job.get(Keys.PS_SHARDS));
    } catch (IllegalArgumentException e) {
      throw new ConfigurationException(
          Keys.PS_SHARDS.name() + "=" + job.get(Keys.PS_SHARDS) + ": " + e.getMessage());
    }
    return ParameterServer.launch(
        new ParameterServer.Context()
            .shards(shards)
            .stepTimeout(job.get(Keys.STEP_TIMEOUT))
            .firstStep(firstStep));
  }

  /**
   * The Spark master: {@code lockstep.spark.master} when set, else the one spark-submit was given
   * ({@code spark.master}), else local mode with a thread per worker.
   */
  static String master(JobConfig job) {
    if (!job.get(Keys.SPARK_MASTER).isEmpty()) {
      return job.get(Keys.SPARK_MASTER);
    }
    return System.getProperty("spark.master", "local[" + job.get(Keys.WORKERS) + "]");
  }

  /**
   * Refuses a local master with fewer task slots than workers, which Spark would otherwise retry
   * for minutes before it fails the barrier stage.
   */
  static void checkLocalSlots(JobConfig job, String master) {
    final Matcher local = LOCAL_MASTER.matcher(master);
    if (!local.matches()) {
      return;
    }
    final String threads = local.group(1);
    final int slots =
        threads == null
            ? 1
            : threads.equals("*")
                ? Runtime.getRuntime().availableProcessors()
                : Integer.parseInt(threads);
    if (slots < job.get(Keys.WORKERS)) {
      throw new ConfigurationException(
          String.format(
              "%s=%d needs %d task slots, but Spark master %s has %d; use local[%d] or fewer"
                  + " workers",
              Keys.WORKERS.name(),
              job.get(Keys.WORKERS),
              job.get(Keys.WORKERS),
              master,
              slots,
              job.get(Keys.WORKERS)));
    }
  }

  /**
   * Whether Spark gave up on a barrier stage because the cluster offered fewer task slots than it
   * has tasks (its {@code BarrierJobSlotsNumberCheckFailed}, not part of Spark's API).
   */
  /**
   * The configuration or data error a worker threw before it reached the parameter server, which a
   * retry would meet again. Spark's barrier failure keeps no cause, only the task's exception as
   * text in its message ({@code "...\nio.lockstep.conf.ConfigurationException: MESSAGE\n\tat
   * ..."}).
   *
   * @return the error, rebuilt, or null when the failure is none of these
   */
  private static RuntimeException refusedByWorker(Throwable e) {
    for (Throwable cause = e; cause != null; cause = cause.getCause()) {
      final String message = cause.getMessage() == null ? "" : cause.getMessage();
      for (String line : message.split("\n")) {
        if (line.startsWith(ConfigurationException.class.getName() + ": ")) {
          return new ConfigurationException(
              line.substring(ConfigurationException.class.getName().length() + 2), e);
        }
        if (line.startsWith(DataException.class.getName() + ": ")) {
          return new DataException(line.substring(DataException.class.getName().length() + 2), e);
        }
      }
      if (cause.getCause() == cause) {
        break;
      }
    }
    return null;
  }

  private static boolean slotsMissing(Throwable e) {
    for (Throwable cause = e; cause != null; cause = cause.getCause()) {
      if (cause.getClass().getSimpleName().equals("BarrierJobSlotsNumberCheckFailed")) {
        return true;
      }
      if (cause.getCause() == cause) {
        break;
      }
    }
    return false;
  }

  /**
   * Spark settings a barrier stage of one task per worker needs, over what spark-submit or the user
   * set: one core per executor and task (a worker is one task; its threads are {@code
   * lockstep.worker.threads}), as many cores or executors as workers, no dynamic allocation
   * (barrier stages refuse it), no task retries inside a stage (the driver retries whole stages),
   * and the JVM options Aeron needs on every executor.
   */
  static SparkConf sparkConf(JobConfig job, String master) {
    final SparkConf conf =
        new SparkConf()
            .setMaster(master)
            .setAppName("lockstep " + job.get(Keys.JOB_NAME))
            .set("spark.ui.showConsoleProgress", "false")
            .set("spark.task.maxFailures", "1")
            .set("spark.dynamicAllocation.enabled", "false");
    // running tasks' accumulators reach the driver's progress bar with every heartbeat
    conf.setIfMissing("spark.executor.heartbeatInterval", "1s");
    // an executor whose host went silent (power, link) is counted out within about 35 s, not
    // Spark's 120 s checked each 60 s, so a failed stage's retry runs on the executors that remain
    // instead of waiting for the lost one's task (lockstep.train.elastic)
    conf.setIfMissing("spark.storage.blockManagerHeartbeatTimeoutMs", "30s");
    conf.setIfMissing("spark.storage.blockManagerTimeoutIntervalMs", "5s");
    conf.setIfMissing("spark.network.timeoutInterval", "5s");
    conf.setIfMissing(BROADCAST_BLOCK_KEY, BROADCAST_BLOCK_SIZE);
    final String workers = Integer.toString(job.get(Keys.WORKERS));
    conf.setIfMissing("spark.executor.cores", "1");
    conf.setIfMissing("spark.cores.max", workers);
    conf.setIfMissing("spark.executor.instances", workers);
    // executors may still be registering: wait for their slots as long as for the workers to
    // connect, not Spark's default 40 checks 15 s apart
    final long checks =
        Math.max(1, job.get(Keys.CONNECT_TIMEOUT).toSeconds() / BARRIER_CHECK_SECONDS);
    conf.setIfMissing(
        "spark.scheduler.barrier.maxConcurrentTasksCheck.interval", BARRIER_CHECK_SECONDS + "s");
    conf.setIfMissing(
        "spark.scheduler.barrier.maxConcurrentTasksCheck.maxFailures", Long.toString(checks));
    final String options = conf.get("spark.executor.extraJavaOptions", "");
    final StringBuilder all = new StringBuilder(options);
    for (String option : REQUIRED_JVM_OPTIONS) {
      if (!options.contains(option)) {
        all.append(all.isEmpty() ? "" : " ").append(option);
      }
    }
    if (!options.contains("NewSize") && !options.contains("-Xmn")) {
      all.append(all.isEmpty() ? "" : " ").append(YOUNG_GENERATION_OPTION);
    }
    if (!options.contains("G1HeapRegionSize")) {
      all.append(all.isEmpty() ? "" : " ").append(HEAP_REGION_OPTION);
    }
    conf.set("spark.executor.extraJavaOptions", all.toString());
    ALLOCATOR_ENVIRONMENT.forEach(
        (name, value) -> conf.setIfMissing("spark.executorEnv." + name, value));
    return conf;
  }

  /**
   * Says once, where this JVM was started without {@link #ALLOCATOR_ENVIRONMENT} (a driver not
   * started by {@code bin/lockstep}), that its resident memory will grow over a long run and how to
   * start it instead.
   */
  private static void warnOfAllocator() {
    if (!System.getProperty("os.name", "").startsWith("Linux")) {
      return;
    }
    ALLOCATOR_ENVIRONMENT.forEach(
        (name, value) -> {
          if (System.getenv(name) == null && WARNED_OF_ALLOCATOR.compareAndSet(false, true)) {
            LOG.warn(
                "{} is not set in the driver's environment: glibc will keep the memory of freed"
                    + " buffers and the driver's resident memory grow over a long run (the workers"
                    + " of local mode run in it); start it with {}={} (bin/lockstep does)",
                name,
                name,
                value);
          }
        });
  }

  private static final java.util.concurrent.atomic.AtomicBoolean WARNED_OF_ALLOCATOR =
      new java.util.concurrent.atomic.AtomicBoolean();

  private static String aeronDirectory(long jobId) {
    return AeronDirectories.base()
        .resolve(AeronDirectories.PREFIX + Long.toHexString(jobId))
        .toString();
  }

  /**
   * The workers the next attempt of a stage runs on ({@code lockstep.train.elastic}): fewer than
   * now only once Spark gave up on the last attempt for want of task slots, after waiting {@code
   * lockstep.ps.connect-timeout} for them (executors lost for good: a lost executor's host that is
   * alive gets a new one within seconds, executors still registering at the start are waited for);
   * more, up to the job's, when the cluster offers more again and the job may grow; unchanged when
   * it offers none; always the job's where it may not shrink.
   *
   * @param job the job
   * @param current the workers of the last attempt
   * @param slots the task slots the cluster offers now
   * @param slotsMissing whether Spark gave up on the last attempt for want of slots
   * @return the workers, in [1, job's workers]
   */
  static int stageWorkers(JobConfig job, int current, int slots, boolean slotsMissing) {
    if (job.shrinkRefusal() != null) {
      return job.get(Keys.WORKERS);
    }
    if (slots <= 0) {
      return current;
    }
    if (slotsMissing && slots < current) {
      return slots;
    }
    if (job.get(Keys.ELASTIC) == Elasticity.GROW && slots > current) {
      return Math.min(slots, job.get(Keys.WORKERS));
    }
    return current;
  }

  /** The task slots the cluster offers now: the executors' cores, as Spark counts them. */
  private static int slots(JavaSparkContext spark) {
    final SparkContext context = spark.sc();
    return context.maxNumConcurrentTasks(context.resourceProfileManager().defaultResourceProfile());
  }

  /**
   * After a failed stage, waits up to a few seconds until Spark counts no more task slots than
   * {@code workers} minus those of executors it has lost since: a killed executor's connection
   * closes at once, but its removal reaches the scheduler a moment later, and a stage started
   * before that would wait for the lost slot.
   */
  private static void awaitLostExecutors(JavaSparkContext spark, int workers) {
    final long deadline = System.nanoTime() + LOST_EXECUTOR_GRACE.toNanos();
    final int before = slots(spark);
    while (System.nanoTime() < deadline && slots(spark) >= Math.min(before, workers)) {
      try {
        Thread.sleep(100);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return;
      }
    }
  }

  private static List<StageReport> runBarrierStage(
      JavaSparkContext spark, StageTask task, StepListener listener) {
    final int workers = task.workers();
    final Function1<scala.collection.Iterator<Integer>, scala.collection.Iterator<StageReport>>
        train = new WorkerFunction(task, listener);
    final ClassTag<StageReport> tag = ClassTag$.MODULE$.apply(StageReport.class);
    final Object collected =
        spark
            .parallelize(IntStream.range(0, workers).boxed().toList(), workers)
            .rdd()
            .barrier()
            .mapPartitions(train, false, tag)
            .collect();
    final List<StageReport> reports = new ArrayList<>(Arrays.asList((StageReport[]) collected));
    reports.sort((a, b) -> Integer.compare(a.rank(), b.rank()));
    return reports;
  }

  /** The body of one barrier task: runs {@link Worker#runStage} as the partition's rank. */
  private static final class WorkerFunction
      extends scala.runtime.AbstractFunction1<
          scala.collection.Iterator<Integer>, scala.collection.Iterator<StageReport>>
      implements Serializable {
    private static final long serialVersionUID = 1L;
    private final StageTask task;
    private final StepListener listener;

    WorkerFunction(StageTask task, StepListener listener) {
      this.task = task;
      this.listener = listener;
    }

    @Override
    public scala.collection.Iterator<StageReport> apply(scala.collection.Iterator<Integer> ranks) {
      final BarrierTaskContext context = BarrierTaskContext.get();
      final int rank = context.partitionId();
      final String address = context.getTaskInfos()[rank].address();
      final String host = hostOf(address);
      final int workersOnHost =
          (int)
              Arrays.stream(context.getTaskInfos())
                  .filter(info -> hostOf(info.address()).equals(host))
                  .count();
      final org.apache.spark.resource.ResourceInformation gpu = context.resourcesJMap().get("gpu");
      ComputeDevice.bind(gpu == null ? List.of() : List.of(gpu.addresses()));
      if (!"driver".equals(org.apache.spark.SparkEnv.get().executorId())) {
        // an executor's log says what each of its tasks trains, and which attempt it is
        LOG.info(
            "rank {}: epoch {} steps {}-{} starting (stage attempt {})",
            rank,
            task.epoch() + 1,
            task.fromStep() + 1,
            task.fromStep() + task.steps(),
            context.stageAttemptNumber());
      }
      if (task.job().get(Keys.TRANSPORT) == Transport.IPC) {
        requireDriversHost(task.server().shard(0).host(), rank, host);
      }
      final String executor = org.apache.spark.SparkEnv.get().executorId();
      final StageReport report =
          Worker.runStage(
                  task,
                  rank,
                  task.job().get(Keys.TRANSPORT) == Transport.UDP ? host : null,
                  workersOnHost,
                  listener)
              .withResources(
                  ProcessResources.measure(
                      "driver".equals(executor) ? "driver" : "executor " + executor, host));
      return CollectionConverters.asScala(List.of(report).iterator());
    }

    /**
     * Refuses IPC on an executor on another host than the driver's: the server's Aeron directory is
     * in the driver host's {@code /dev/shm}, which no other host sees, so the worker would wait for
     * its connect timeout and name the wrong cause.
     *
     * @param driverHost the driver's address (the server's, for IPC)
     * @throws ConfigurationException when {@code driverHost} is none of this host's addresses
     */
    private static void requireDriversHost(String driverHost, int rank, String host) {
      try {
        final InetAddress driver = InetAddress.getByName(driverHost);
        if (driver.isLoopbackAddress() || NetworkInterface.getByInetAddress(driver) != null) {
          return;
        }
      } catch (IOException e) {
        // an address this host cannot even resolve is not this host's either
      }
      throw new ConfigurationException(
          Keys.TRANSPORT.name()
              + "=ipc needs every worker on the driver's host ("
              + driverHost
              + "), but rank "
              + rank
              + " runs on "
              + host
              + "; set "
              + Keys.TRANSPORT.name()
              + "=udp for workers on other hosts");
    }

    private static String hostOf(String address) {
      return address.contains(":") ? address.substring(0, address.lastIndexOf(':')) : address;
    }
  }

  /**
   * What the driver holds now, then what each executor held at the end of its last stage: one line
   * per process (the workers of local mode run in the driver's).
   */
  private static List<ProcessResources> resources(String driverHost, List<StageReport> reports) {
    final List<ProcessResources> processes = new ArrayList<>();
    processes.add(ProcessResources.measure("driver", driverHost));
    for (StageReport report : reports) {
      final ProcessResources executor = report.resources();
      if (executor != null
          && processes.stream().noneMatch(p -> p.process().equals(executor.process()))) {
        processes.add(executor);
      }
    }
    return processes;
  }

  private static void checkReplicasAgree(List<StageReport> reports, StageTask task) {
    final long expected = reports.get(0).parametersCrc();
    for (StageReport report : reports) {
      if (report.parametersCrc() != expected) {
        throw new IllegalStateException(
            "epoch "
                + (task.epoch() + 1)
                + " step "
                + task.toStep()
                + ": replica of rank "
                + report.rank()
                + " differs from rank 0 (parameter CRC "
                + Long.toHexString(report.parametersCrc())
                + " vs "
                + Long.toHexString(expected)
                + "); the workers did not apply identical steps");
      }
    }
  }
}
