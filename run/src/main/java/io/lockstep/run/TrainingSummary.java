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
   * This summary with the accuracy of the same training from random weights.
   *
   * @param accuracy the scratch run's test accuracy
   * @return a copy with {@code scratchTestAccuracy} set
   */
  public TrainingSummary withScratchTestAccuracy(double accuracy) {
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
        accuracy,
        testMetric,
        workerSpans);
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
