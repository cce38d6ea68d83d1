package io.lockstep.run;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import java.util.List;

/**
 * What a finished run reports; written to {@code summary.json} with these field names in
 * snake_case.
 *
 * @param job the job's name
 * @param model the model's name
 * @param workers data-parallel workers
 * @param batchSize global batch
 * @param epochs epochs trained
 * @param steps optimizer steps in all
 * @param parameters trainable parameters
 * @param seed the seed
 * @param testAccuracy the test score after the last epoch: the model's task's metric (accuracy, mAP
 *     at IoU 0.5 for detectors, mean IoU for grounding), named in summary.json by {@code
 *     testMetric}
 * @param bestTestAccuracy the best test score after any epoch (the model in best-model.zip)
 * @param bestEpoch the epoch, from 1, of the best test score
 * @param imagesPerSecond training samples per second of the workers' step loops: samples over
 *     {@code stepSeconds}, which is what PyTorch's DistributedDataParallel scripts time (barrier to
 *     barrier around the loop, set-up and data loading outside)
 * @param wallSeconds the run's whole wall time, start-up and evaluation included
 * @param trainSeconds the wall time of the training stages: the steps plus each stage's set-up
 *     (Spark scheduling, data loading, replica and engine set-up, connecting to the server)
 * @param stepSeconds the workers' mean time in steps (data, compute, sync and apply summed)
 * @param stageImagesPerSecond training samples per second of {@code trainSeconds}
 * @param sparkMaster the Spark master the run used
 * @param transport the worker-server transport
 * @param syncMode how the replicas synchronized ({@code lockstep.ps.mode})
 * @param compression how workers encoded what they sent ({@code lockstep.ps.compression})
 * @param frameTags whether the frames carried an HMAC tag under the job's key ({@code
 *     lockstep.ps.frame-tags}): the key the parameter server was started with
 * @param overlap whether workers sent the gradient during the backward pass (then compute includes
 *     sending, and sync is the wait for the rest of the sums)
 * @param engine what computed the workers' forward and backward passes ({@code onednn}, or {@code
 *     deeplearning4j} with the reason)
 * @param phaseSeconds per-worker mean seconds in data, compute, sync, apply
 * @param rejectedFrames frames the server dropped
 * @param stageRetries stages that failed and ran again ({@code lockstep.train.stage-retries})
 * @param parametersCrc32 CRC-32 of the final parameters' bytes: equal exactly when two runs end
 *     with the same bits
 * @param resumedFromStep the global step the run resumed from, 0 when it started fresh
 * @param history one entry per epoch
 * @param pretrained the saved model the run started from, null for random weights
 * @param frozenLayers layers kept as the pretrained model has them
 * @param scratchTestAccuracy the test accuracy of the same training from random weights, null when
 *     it was not asked for ({@code lockstep.model.scratch-baseline})
 * @param testMetric the test score's name: {@code test_accuracy}, {@code map50} or {@code
 *     mean_iou}; summary.json gives the test scores under it ({@code map50}, {@code best_map50},
 *     {@code scratch_map50}, and in the history)
 * @param workerSpans which of the steps this run trained ran on how many workers: one span unless
 *     it lost workers and went on with fewer ({@code lockstep.train.elastic})
 */
public record TrainingSummary(
    String job,
    String model,
    int workers,
    int batchSize,
    int epochs,
    long steps,
    long parameters,
    long seed,
    double testAccuracy,
    double bestTestAccuracy,
    int bestEpoch,
    double imagesPerSecond,
    double wallSeconds,
    double trainSeconds,
    double stepSeconds,
    double stageImagesPerSecond,
    String sparkMaster,
    String transport,
    String syncMode,
    String compression,
    boolean frameTags,
    boolean overlap,
    String engine,
    Phases phaseSeconds,
    long rejectedFrames,
    int stageRetries,
    String parametersCrc32,
    long resumedFromStep,
    List<Epoch> history,
    String pretrained,
    int frozenLayers,
    Double scratchTestAccuracy,
    String testMetric,
    List<WorkerSpans.Span> workerSpans) {

  /**
   * A builder that names every field, for the driver's one summary of a run.
   *
   * @return an empty builder; {@code scratchTestAccuracy} and {@code pretrained} stay null unless
   *     set
   */
  public static Builder builder() {
    return new Builder();
  }

  /**
   * This summary with the accuracy of the same training from random weights.
   *
   * @param accuracy the scratch run's test accuracy
   * @return a copy with {@code scratchTestAccuracy} set
   */
  public TrainingSummary withScratchTestAccuracy(double accuracy) {
    return toBuilder().scratchTestAccuracy(accuracy).build();
  }

  private Builder toBuilder() {
    final Builder builder = new Builder();
    builder.job = job;
    builder.model = model;
    builder.workers = workers;
    builder.batchSize = batchSize;
    builder.epochs = epochs;
    builder.steps = steps;
    builder.parameters = parameters;
    builder.seed = seed;
    builder.testAccuracy = testAccuracy;
    builder.bestTestAccuracy = bestTestAccuracy;
    builder.bestEpoch = bestEpoch;
    builder.imagesPerSecond = imagesPerSecond;
    builder.wallSeconds = wallSeconds;
    builder.trainSeconds = trainSeconds;
    builder.stepSeconds = stepSeconds;
    builder.stageImagesPerSecond = stageImagesPerSecond;
    builder.sparkMaster = sparkMaster;
    builder.transport = transport;
    builder.syncMode = syncMode;
    builder.compression = compression;
    builder.frameTags = frameTags;
    builder.overlap = overlap;
    builder.engine = engine;
    builder.phaseSeconds = phaseSeconds;
    builder.rejectedFrames = rejectedFrames;
    builder.stageRetries = stageRetries;
    builder.parametersCrc32 = parametersCrc32;
    builder.resumedFromStep = resumedFromStep;
    builder.history = history;
    builder.pretrained = pretrained;
    builder.frozenLayers = frozenLayers;
    builder.scratchTestAccuracy = scratchTestAccuracy;
    builder.testMetric = testMetric;
    builder.workerSpans = workerSpans;
    return builder;
  }

  /** Sets a summary's fields by name; see the record's components for what each means. */
  public static final class Builder {
    private String job;
    private String model;
    private int workers;
    private int batchSize;
    private int epochs;
    private long steps;
    private long parameters;
    private long seed;
    private double testAccuracy;
    private double bestTestAccuracy;
    private int bestEpoch;
    private double imagesPerSecond;
    private double wallSeconds;
    private double trainSeconds;
    private double stepSeconds;
    private double stageImagesPerSecond;
    private String sparkMaster;
    private String transport;
    private String syncMode;
    private String compression;
    private boolean frameTags;
    private boolean overlap;
    private String engine;
    private Phases phaseSeconds;
    private long rejectedFrames;
    private int stageRetries;
    private String parametersCrc32;
    private long resumedFromStep;
    private List<Epoch> history;
    private String pretrained;
    private int frozenLayers;
    private Double scratchTestAccuracy;
    private String testMetric;
    private List<WorkerSpans.Span> workerSpans;

    private Builder() {}

    public Builder job(String job) {
      this.job = job;
      return this;
    }

    public Builder model(String model) {
      this.model = model;
      return this;
    }

    public Builder workers(int workers) {
      this.workers = workers;
      return this;
    }

    public Builder batchSize(int batchSize) {
      this.batchSize = batchSize;
      return this;
    }

    public Builder epochs(int epochs) {
      this.epochs = epochs;
      return this;
    }

    public Builder steps(long steps) {
      this.steps = steps;
      return this;
    }

    public Builder parameters(long parameters) {
      this.parameters = parameters;
      return this;
    }

    public Builder seed(long seed) {
      this.seed = seed;
      return this;
    }

    public Builder testAccuracy(double testAccuracy) {
      this.testAccuracy = testAccuracy;
      return this;
    }

    public Builder bestTestAccuracy(double bestTestAccuracy) {
      this.bestTestAccuracy = bestTestAccuracy;
      return this;
    }

    public Builder bestEpoch(int bestEpoch) {
      this.bestEpoch = bestEpoch;
      return this;
    }

    public Builder imagesPerSecond(double imagesPerSecond) {
      this.imagesPerSecond = imagesPerSecond;
      return this;
    }

    public Builder wallSeconds(double wallSeconds) {
      this.wallSeconds = wallSeconds;
      return this;
    }

    public Builder trainSeconds(double trainSeconds) {
      this.trainSeconds = trainSeconds;
      return this;
    }

    public Builder stepSeconds(double stepSeconds) {
      this.stepSeconds = stepSeconds;
      return this;
    }

    public Builder stageImagesPerSecond(double stageImagesPerSecond) {
      this.stageImagesPerSecond = stageImagesPerSecond;
      return this;
    }

    public Builder sparkMaster(String sparkMaster) {
      this.sparkMaster = sparkMaster;
      return this;
    }

    public Builder transport(String transport) {
      this.transport = transport;
      return this;
    }

    public Builder syncMode(String syncMode) {
      this.syncMode = syncMode;
      return this;
    }

    public Builder compression(String compression) {
      this.compression = compression;
      return this;
    }

    public Builder frameTags(boolean frameTags) {
      this.frameTags = frameTags;
      return this;
    }

    public Builder overlap(boolean overlap) {
      this.overlap = overlap;
      return this;
    }

    public Builder engine(String engine) {
      this.engine = engine;
      return this;
    }

    public Builder phaseSeconds(Phases phaseSeconds) {
      this.phaseSeconds = phaseSeconds;
      return this;
    }

    public Builder rejectedFrames(long rejectedFrames) {
      this.rejectedFrames = rejectedFrames;
      return this;
    }

    public Builder stageRetries(int stageRetries) {
      this.stageRetries = stageRetries;
      return this;
    }

    public Builder parametersCrc32(String parametersCrc32) {
      this.parametersCrc32 = parametersCrc32;
      return this;
    }

    public Builder resumedFromStep(long resumedFromStep) {
      this.resumedFromStep = resumedFromStep;
      return this;
    }

    public Builder history(List<Epoch> history) {
      this.history = history;
      return this;
    }

    public Builder pretrained(String pretrained) {
      this.pretrained = pretrained;
      return this;
    }

    public Builder frozenLayers(int frozenLayers) {
      this.frozenLayers = frozenLayers;
      return this;
    }

    public Builder scratchTestAccuracy(Double scratchTestAccuracy) {
      this.scratchTestAccuracy = scratchTestAccuracy;
      return this;
    }

    public Builder testMetric(String testMetric) {
      this.testMetric = testMetric;
      return this;
    }

    public Builder workerSpans(List<WorkerSpans.Span> workerSpans) {
      this.workerSpans = workerSpans;
      return this;
    }

    /**
     * The summary.
     *
     * @return the record of the fields set
     */
    public TrainingSummary build() {
      return new TrainingSummary(
          job,
          model,
          workers,
          batchSize,
          epochs,
          steps,
          parameters,
          seed,
          testAccuracy,
          bestTestAccuracy,
          bestEpoch,
          imagesPerSecond,
          wallSeconds,
          trainSeconds,
          stepSeconds,
          stageImagesPerSecond,
          sparkMaster,
          transport,
          syncMode,
          compression,
          frameTags,
          overlap,
          engine,
          phaseSeconds,
          rejectedFrames,
          stageRetries,
          parametersCrc32,
          resumedFromStep,
          history,
          pretrained,
          frozenLayers,
          scratchTestAccuracy,
          testMetric,
          workerSpans);
    }
  }

  /**
   * The summary as summary.json holds it: the test scores named by {@link #testMetric}.
   *
   * @return the JSON tree
   */
  public JsonObject toJson() {
    final JsonObject json = RunFiles.JSON.toJsonTree(this).getAsJsonObject();
    final String accuracy = "test_accuracy";
    if (!testMetric.equals(accuracy)) {
      rename(json, accuracy, testMetric);
      rename(json, "best_" + accuracy, "best_" + testMetric);
      rename(json, "scratch_" + accuracy, "scratch_" + testMetric);
      for (JsonElement epoch : json.getAsJsonArray("history")) {
        rename(epoch.getAsJsonObject(), accuracy, testMetric);
      }
    }
    return json;
  }

  private static void rename(JsonObject json, String from, String to) {
    final JsonElement value = json.remove(from);
    if (value != null) {
      json.add(to, value);
    }
  }

  /**
   * Mean seconds per worker in each phase of a step.
   *
   * @param data assembling batches
   * @param compute forward and backward (with overlap, sending the chunks finished during it)
   * @param sync exchanging gradients (with overlap, sending the rest and waiting for the sums),
   *     including waiting for the slowest worker
   * @param apply the optimizer step
   */
  public record Phases(double data, double compute, double sync, double apply) {}

  /**
   * One epoch.
   *
   * @param epoch the epoch, from 1
   * @param steps its steps
   * @param trainLoss mean training loss over its samples
   * @param testAccuracy the test score after it (see {@code testMetric})
   * @param seconds wall time of its training stage
   */
  public record Epoch(
      int epoch, int steps, double trainLoss, double testAccuracy, double seconds) {}
}
