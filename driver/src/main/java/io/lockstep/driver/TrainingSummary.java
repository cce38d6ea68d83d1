package io.lockstep.driver;

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
 * @param testAccuracy accuracy on the test set after the last epoch
 * @param bestTestAccuracy the best test accuracy after any epoch (the model in best-model.zip)
 * @param bestEpoch the epoch, from 1, of the best test accuracy
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
 * @param overlap whether workers sent the gradient during the backward pass (then compute includes
 *     sending, and sync is the wait for the rest of the sums)
 * @param engine what computed the workers' forward and backward passes ({@code onednn}, or {@code
 *     deeplearning4j} with the reason)
 * @param phaseSeconds per-worker mean seconds in data, compute, sync, apply
 * @param rejectedFrames frames the server dropped
 * @param parametersCrc32 CRC-32 of the final parameters' bytes: equal exactly when two runs end
 *     with the same bits
 * @param resumedFromStep the global step the run resumed from, 0 when it started fresh
 * @param history one entry per epoch
 * @param pretrained the saved model the run started from, null for random weights
 * @param frozenLayers layers kept as the pretrained model has them
 * @param scratchTestAccuracy the test accuracy of the same training from random weights, null when
 *     it was not asked for ({@code lockstep.model.scratch-baseline})
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
    boolean overlap,
    String engine,
    Phases phaseSeconds,
    long rejectedFrames,
    String parametersCrc32,
    long resumedFromStep,
    List<Epoch> history,
    String pretrained,
    int frozenLayers,
    Double scratchTestAccuracy) {

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
        overlap,
        engine,
        phaseSeconds,
        rejectedFrames,
        parametersCrc32,
        resumedFromStep,
        history,
        pretrained,
        frozenLayers,
        accuracy);
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
   * @param testAccuracy accuracy on the test set after it
   * @param seconds wall time of its training stage
   */
  public record Epoch(
      int epoch, int steps, double trainLoss, double testAccuracy, double seconds) {}
}
