package io.lockstep.worker;

import java.io.Serializable;

/**
 * What one worker reports after a stage.
 *
 * @param rank the worker
 * @param samples samples this worker computed gradients for
 * @param stepLossSums per step of the stage, the sum over this worker's samples of the loss
 * @param stepSamples per step of the stage, this worker's samples
 * @param learningRates per step of the stage, the learning rate applied (equal on every rank)
 * @param gradientNorms per step, the L2 norm of the global mean gradient before clipping
 * @param phases per step, when it began and where its time went
 * @param parametersCrc CRC-32 of the replica's parameters at the end, equal on every rank
 * @param state the replica at the end of the stage (rank 0 only, null elsewhere)
 * @param resources what the worker's process held when the stage ended, its replica closed; null
 *     until {@link #withResources} sets it
 */
public record StageReport(
    int rank,
    long samples,
    double[] stepLossSums,
    int[] stepSamples,
    double[] learningRates,
    double[] gradientNorms,
    StepPhases phases,
    long parametersCrc,
    ModelState state,
    ProcessResources resources)
    implements Serializable {

  /**
   * @param measured what the worker's process held at the stage's end
   * @return this report with {@code measured}
   */
  public StageReport withResources(ProcessResources measured) {
    return new StageReport(
        rank,
        samples,
        stepLossSums,
        stepSamples,
        learningRates,
        gradientNorms,
        phases,
        parametersCrc,
        state,
        measured);
  }

  /**
   * @return time spent taking batches from the prefetcher, over the stage
   */
  public long dataNs() {
    return StepPhases.sum(phases.dataNs());
  }

  /**
   * @return time in forward and backward passes, over the stage
   */
  public long computeNs() {
    return StepPhases.sum(phases.computeNs());
  }

  /**
   * @return time exchanging gradients with the parameter server, over the stage
   */
  public long syncNs() {
    return StepPhases.sum(phases.sendNs())
        + StepPhases.sum(phases.waitNs())
        + StepPhases.sum(phases.receiveNs());
  }

  /**
   * @return time applying the optimizer step, over the stage
   */
  public long applyNs() {
    return StepPhases.sum(phases.applyNs());
  }

  /**
   * @return the sum over this worker's samples of the loss, over the whole stage
   */
  public double lossSum() {
    double sum = 0;
    for (double s : stepLossSums) {
      sum += s;
    }
    return sum;
  }
}
