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
import io.lockstep.ps.ParameterServerException;
import io.lockstep.ps.RunningServer;
import io.lockstep.ps.ServerAddress;
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
import java.net.InetAddress;
import java.net.NetworkInterface;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;
import org.apache.spark.BarrierTaskContext;
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

  /** How long a failed stage's retry waits for Spark to count a lost executor's slots out. */
  private static final Duration LOST_EXECUTOR_GRACE = Duration.ofSeconds(3);

  private TrainingDriver() {}

  /**
   * Trains the job to the end, from the start or from the run directory's checkpoint.
   *
   * @param job the validated job
   * @param runDir where the run's files go; created if missing
   * @param resume whether to continue from {@code runDir/checkpoint.zip}
   * @return the summary, also written to {@code runDir/summary.json}
   */
  public static TrainingSummary train(JobConfig job, Path runDir, boolean resume) {
    SparkSettings.warnOfAllocator();
    final long startNs = System.nanoTime();
    final String master = SparkSettings.master(job);
    SparkSettings.checkLocalSlots(job, master);
    ComputeThreads.configure(
        job.get(Keys.WORKER_THREADS), master.startsWith("local") ? job.get(Keys.WORKERS) : 1);
    final byte[] secret = ServerPlacement.secret(job);
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
    final Checkpoint checkpoint =
        resume ? Checkpoint.read(runDir.resolve(RunDirectory.CHECKPOINT_FILE)) : null;
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
            runDir.resolve(RunDirectory.CHECKPOINT_FILE)
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
    RunFiles.writeText(runDir.resolve(RunDirectory.JOB_FILE), job.render());
    final Path metricsFile = runDir.resolve(RunDirectory.METRICS_FILE);
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
    try (JavaSparkContext spark = new JavaSparkContext(SparkSettings.sparkConf(job, master));
        SharedState shared = new SharedState(spark)) {
      final EpochProgress progress =
          EpochProgress.start(spark, job.get(Keys.RUN_PROGRESS), job.get(Keys.WORKERS));
      // a failed stage's other tasks are interrupted, not left waiting out the step timeout
      // beside the stage that runs again (their exchange stops at an interrupt)
      spark.setLocalProperty("spark.job.interruptOnCancel", "true");
      final String serverHost = ServerPlacement.serverHost(job, master, spark.getConf());
      address =
          ServerPlacement.serverAddress(job, serverHost, parameters, secret, job.get(Keys.WORKERS));
      server = ServerPlacement.launchServer(job, serverHost, address, run.model().iteration());
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
              address = ServerPlacement.serverAddress(job, serverHost, parameters, secret, workers);
              server =
                  ServerPlacement.launchServer(job, serverHost, address, run.model().iteration());
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
          timeline.write(runDir.resolve(RunDirectory.TIMELINE_FILE));
          if (run.step() < stepsPerEpoch) {
            try (Replica checkpointed =
                Replica.restore(run.model(), ComputeEngine.DEEPLEARNING4J)) {
              Checkpoint.write(
                  runDir.resolve(RunDirectory.CHECKPOINT_FILE), checkpointed, run.progress());
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
          timeline.write(runDir.resolve(RunDirectory.TIMELINE_FILE));
          if (ended.best()) {
            writeModel(runDir.resolve(RunDirectory.BEST_MODEL_FILE), trained);
          }
          final long globalStep = (long) (epoch + 1) * stepsPerEpoch;
          final int every = job.get(Keys.CHECKPOINT_EVERY_STEPS);
          if (job.get(Keys.CHECKPOINT_AT_EPOCH_END)
              || epoch + 1 == job.get(Keys.EPOCHS)
              || (every > 0 && globalStep % every == 0)) {
            Checkpoint.write(runDir.resolve(RunDirectory.CHECKPOINT_FILE), trained, run.progress());
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
      writeModel(runDir.resolve(RunDirectory.MODEL_FILE), last);
    }
    writeSummary(runDir, summary);
    writeReport(runDir);
    if (!job.get(Keys.MODEL_SCRATCH_BASELINE)) {
      return summary;
    }
    final Path scratchDir = runDir.resolve(RunDirectory.SCRATCH_DIR);
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
          runDir.resolve(RunDirectory.REPORT_FILE)
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
        runDir.resolve(RunDirectory.SUMMARY_FILE),
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
    final String where = runDir.resolve(RunDirectory.CHECKPOINT_FILE) + ": ";
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
    final boolean finished = Files.isRegularFile(runDir.resolve(RunDirectory.MODEL_FILE));
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

  /**
   * Whether Spark gave up on a barrier stage because the cluster offered fewer task slots than it
   * has tasks (its {@code BarrierJobSlotsNumberCheckFailed}, not part of Spark's API).
   */
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
