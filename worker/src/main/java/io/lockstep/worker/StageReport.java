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
 * @param dataNs time spent assembling batches
 * @param computeNs time in forward and backward passes
 * @param syncNs time exchanging gradients with the parameter server
 * @param applyNs time applying the optimizer step
 * @param parametersCrc CRC-32 of the replica's parameters at the end, equal on every rank
 * @param state the replica at the end of the stage (rank 0 only, null elsewhere)
 */
public record StageReport(
    int rank,
    long samples,
    double[] stepLossSums,
    int[] stepSamples,
    double[] learningRates,
    double[] gradientNorms,
    long dataNs,
    long computeNs,
    long syncNs,
    long applyNs,
    long parametersCrc,
    ModelState state)
    implements Serializable {

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
