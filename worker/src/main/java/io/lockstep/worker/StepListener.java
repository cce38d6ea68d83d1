package io.lockstep.worker;

/** Told of every step a worker finishes, as it finishes it: live progress for the driver. */
@FunctionalInterface
public interface StepListener {
  /** Hears nothing. */
  StepListener NONE = (rank, step, lossSum, samples) -> {};

  /**
   * One step is done on one worker.
   *
   * @param rank the worker
   * @param globalStep the step, from 0
   * @param lossSum the sum of the loss over the worker's samples of the step
   * @param samples the worker's samples of the step
   */
  void stepDone(int rank, long globalStep, double lossSum, int samples);
}
