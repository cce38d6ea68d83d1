package io.lockstep.driver;

import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Keys;
import io.lockstep.run.Checkpoint;
import io.lockstep.run.TrainingSummary;
import io.lockstep.worker.ModelState;
import io.lockstep.worker.StageReport;
import java.util.ArrayList;
import java.util.List;

/**
 * Where a run stands: the model after its last stage, the epoch and step it goes on from, and what
 * it has measured so far. The driver updates it once per stage and once per epoch; a checkpoint
 * saves it ({@link #progress}) and a resumed run starts from it ({@link #resume}).
 */
final class RunState {
  private final JobConfig job;
  private final int stepsPerEpoch;
  private final PhaseTimes phases;
  private final List<TrainingSummary.Epoch> history;
  private ModelState model;
  private int epoch;
  private int step;
  private long samples;
  private double trainSeconds;
  private double epochLossSum;
  private long epochSamples;
  private double epochSeconds;
  private double bestAccuracy;
  private int bestEpoch;

  /** The figures of an epoch that has ended. */
  record EndedEpoch(
      double trainLoss, double score, long samples, double lossSum, double seconds, boolean best) {
    double imagesPerSecond() {
      return samples / seconds;
    }
  }

  private RunState(
      JobConfig job,
      int stepsPerEpoch,
      ModelState model,
      Checkpoint.Progress from,
      List<TrainingSummary.Epoch> history) {
    this.job = job;
    this.stepsPerEpoch = stepsPerEpoch;
    this.model = model;
    this.history = history;
    this.phases = from == null ? PhaseTimes.zero() : PhaseTimes.of(from.phaseNs());
    if (from != null) {
      epoch = from.epoch();
      step = from.step();
      samples = from.samples();
      trainSeconds = from.trainSeconds();
      epochLossSum = from.epochLossSum();
      epochSamples = from.epochSamples();
      epochSeconds = from.epochSeconds();
      bestAccuracy = from.bestAccuracy();
      bestEpoch = from.bestEpoch();
    } else {
      bestAccuracy = Double.NaN;
    }
  }

  /**
   * A new run, at its first step.
   *
   * @param job the job
   * @param stepsPerEpoch steps of each epoch
   * @param model the initial model
   */
  static RunState start(JobConfig job, int stepsPerEpoch, ModelState model) {
    return new RunState(job, stepsPerEpoch, model, null, new ArrayList<>());
  }

  /**
   * A run going on where a checkpoint left it.
   *
   * @param job the job
   * @param stepsPerEpoch steps of each epoch
   * @param progress what the checkpoint saved
   * @param model the checkpoint's model
   */
  static RunState resume(
      JobConfig job, int stepsPerEpoch, Checkpoint.Progress progress, ModelState model) {
    return new RunState(job, stepsPerEpoch, model, progress, new ArrayList<>(progress.history()));
  }

  /**
   * Takes in a stage that ran from the current step to {@code to}.
   *
   * @param reports the workers' reports, rank 0 first, whose model the next stage starts from
   * @param seconds the stage's time, set-up included
   * @param to the step after the stage's last
   */
  void addStage(List<StageReport> reports, double seconds, int to) {
    model = reports.get(0).state();
    final double share = (double) job.get(Keys.WORKERS) / reports.size();
    for (StageReport report : reports) {
      epochSamples += report.samples();
      epochLossSum += report.lossSum();
      phases.add(report, share);
    }
    epochSeconds += seconds;
    step = to;
  }

  /**
   * Ends the current epoch with its test score: adds it to the totals and the history, keeps it as
   * the best when it is, and moves to the next epoch's first step.
   *
   * @param score the test metric after the epoch
   * @return the ended epoch's figures
   */
  EndedEpoch endEpoch(double score) {
    samples += epochSamples;
    trainSeconds += epochSeconds;
    final double trainLoss = epochSamples == 0 ? Double.NaN : epochLossSum / epochSamples;
    history.add(
        new TrainingSummary.Epoch(epoch + 1, stepsPerEpoch, trainLoss, score, epochSeconds));
    final boolean best = !(score <= bestAccuracy);
    if (best) {
      bestAccuracy = score;
      bestEpoch = epoch + 1;
    }
    final EndedEpoch ended =
        new EndedEpoch(trainLoss, score, epochSamples, epochLossSum, epochSeconds, best);
    epoch++;
    step = 0;
    epochLossSum = 0;
    epochSamples = 0;
    epochSeconds = 0;
    return ended;
  }

  /** What a checkpoint saves of this state, with the job's settings it must be resumed with. */
  Checkpoint.Progress progress() {
    return new Checkpoint.Progress(
        job.get(Keys.MODEL_NAME),
        job.get(Keys.OPTIMIZER).name(),
        job.get(Keys.SEED),
        job.get(Keys.BATCH_SIZE),
        stepsPerEpoch,
        (long) job.get(Keys.EPOCHS) * stepsPerEpoch,
        job.get(Keys.WORKERS),
        epoch,
        step,
        model.iteration(),
        model.epoch(),
        samples,
        trainSeconds,
        epochLossSum,
        epochSamples,
        epochSeconds,
        phases.toArray(),
        List.copyOf(history),
        bestAccuracy,
        bestEpoch);
  }

  ModelState model() {
    return model;
  }

  int epoch() {
    return epoch;
  }

  int step() {
    return step;
  }

  boolean finished() {
    return epoch >= job.get(Keys.EPOCHS);
  }

  long samples() {
    return samples;
  }

  double trainSeconds() {
    return trainSeconds;
  }

  PhaseTimes phases() {
    return phases;
  }

  List<TrainingSummary.Epoch> history() {
    return List.copyOf(history);
  }

  /** The test score after the last epoch, NaN before the first. */
  double score() {
    return history.isEmpty() ? Double.NaN : history.get(history.size() - 1).testAccuracy();
  }

  double bestAccuracy() {
    return bestAccuracy;
  }

  int bestEpoch() {
    return bestEpoch;
  }
}
