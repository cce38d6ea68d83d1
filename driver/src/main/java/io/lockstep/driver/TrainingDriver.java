package io.lockstep.driver;

import com.google.gson.JsonObject;
import io.lockstep.conf.ComputeEngine;
import io.lockstep.conf.ConfigurationException;
import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Keys;
import io.lockstep.conf.Schedule;
import io.lockstep.models.ModelZoo;
import io.lockstep.models.Transfer;
import io.lockstep.protocol.TraceClock;
import io.lockstep.run.Checkpoint;
import io.lockstep.run.Checkpoint.Progress;
import io.lockstep.run.EpochMetrics;
import io.lockstep.run.RunDirectory;
import io.lockstep.run.RunFiles;
import io.lockstep.run.RunReport;
import io.lockstep.run.StepMetrics;
import io.lockstep.run.Timeline;
import io.lockstep.run.TrainingSummary;
import io.lockstep.run.WorkerSpans;
import io.lockstep.worker.ComputeThreads;
import io.lockstep.worker.ModelState;
import io.lockstep.worker.ProcessResources;
import io.lockstep.worker.Replica;
import io.lockstep.worker.StageReport;
import io.lockstep.worker.StageTask;
import io.lockstep.worker.Worker;
import io.lockstep.worker.evaluation.TestMetric;
import io.lockstep.worker.input.Datasets;
import io.lockstep.worker.input.Samples;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.spark.api.java.JavaSparkContext;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.util.ModelSerializer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

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
    final Replica initial =
        Replica.create(configuration, job.get(Keys.WORKER_ENGINE), job.get(Keys.COMPUTE_PRECISION));
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
    final int retries;
    final boolean frameTags;
    final WorkerSpans workerSpans = new WorkerSpans();
    StageRunner stages = null;
    try (JavaSparkContext spark = new JavaSparkContext(SparkSettings.sparkConf(job, master));
        SharedState shared = new SharedState(spark)) {
      final EpochProgress progress =
          EpochProgress.start(spark, job.get(Keys.RUN_PROGRESS), job.get(Keys.WORKERS));
      // a failed stage's other tasks are interrupted, not left waiting out the step timeout
      // beside the stage that runs again (their exchange stops at an interrupt)
      spark.setLocalProperty("spark.job.interruptOnCancel", "true");
      stages =
          new StageRunner(
              job, master, spark, shared, progress, parameters, secret, run.model().iteration());
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
          final StageRunner.Ran ran =
              stages.run(description, run.model(), epoch, stepsPerEpoch, step, to);
          final StageTask task = ran.task();
          final List<StageReport> reports = ran.reports();
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
              stages.drainSpans());
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
      rejected = stages.rejectedFrames();
      retries = stages.retries();
      frameTags = stages.frameTags();
    } finally {
      if (stages != null) {
        stages.close();
      }
      // the workers of local mode ran in this JVM: free what they keep between stages
      Worker.releaseReplicas();
    }
    final ModelState state = run.model();
    final double stepSeconds = run.phases().secondsPerWorker(job.get(Keys.WORKERS));
    final TrainingSummary summary =
        TrainingSummary.builder()
            .job(job.get(Keys.JOB_NAME))
            .model(job.get(Keys.MODEL_NAME))
            .workers(job.get(Keys.WORKERS))
            .batchSize(job.get(Keys.BATCH_SIZE))
            .epochs(job.get(Keys.EPOCHS))
            .steps(run.model().iteration())
            .parameters(parameters)
            .seed(job.get(Keys.SEED))
            .testAccuracy(run.score())
            .bestTestAccuracy(run.bestAccuracy())
            .bestEpoch(run.bestEpoch())
            .imagesPerSecond(run.samples() / stepSeconds)
            .wallSeconds((System.nanoTime() - startNs) / 1e9)
            .trainSeconds(run.trainSeconds())
            .stepSeconds(stepSeconds)
            .stageImagesPerSecond(run.samples() / run.trainSeconds())
            .sparkMaster(master)
            .transport(job.get(Keys.TRANSPORT).name().toLowerCase(java.util.Locale.ROOT))
            .syncMode(
                job.get(Keys.PS_MODE).name().toLowerCase(java.util.Locale.ROOT).replace('_', '-'))
            .compression(
                job.get(Keys.PS_COMPRESSION)
                    .name()
                    .toLowerCase(java.util.Locale.ROOT)
                    .replace('_', '-'))
            .frameTags(frameTags)
            .overlap(job.overlapsBackward())
            .engine(engine)
            .phaseSeconds(run.phases().perWorker(job.get(Keys.WORKERS)))
            .rejectedFrames(rejected)
            .stageRetries(retries)
            .parametersCrc32(String.format("%08x", Replica.crc32(state.parameters())))
            .resumedFromStep(resumedAt)
            .history(run.history())
            .pretrained(
                job.get(Keys.MODEL_PRETRAINED).isBlank() ? null : job.get(Keys.MODEL_PRETRAINED))
            .frozenLayers(job.get(Keys.MODEL_FREEZE_LAYERS))
            .testMetric(metric.name())
            .workerSpans(workerSpans.list())
            .build();
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
