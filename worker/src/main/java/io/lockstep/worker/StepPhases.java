package io.lockstep.worker;

import java.io.Serializable;

/**
 * Where each step of a stage spent one worker's time: the step's start on the wall clock and the
 * nanoseconds of its phases, one array element per step of the stage. The phases follow one another
 * without gaps: data, compute (forward and backward, with the chunks sent during the backward pass
 * when sends overlap it), send (the rest of the gradient), wait (for the answer's first chunk: the
 * server waits for the slowest worker, sums and sends), receive (the rest of the answer), apply.
 *
 * @param startMicros when each step began, microseconds since the epoch
 * @param dataNs taking the step's batch from the prefetcher
 * @param computeNs the forward and backward pass
 * @param sendNs sending what was left of the gradient
 * @param waitNs waiting for the answer's first chunk
 * @param receiveNs taking in the rest of the answer
 * @param applyNs the optimizer step
 */
public record StepPhases(
    long[] startMicros,
    long[] dataNs,
    long[] computeNs,
    long[] sendNs,
    long[] waitNs,
    long[] receiveNs,
    long[] applyNs)
    implements Serializable {

  /**
   * Phases for a stage of {@code steps} steps, all zero.
   *
   * @param steps the stage's steps
   * @return the arrays, to be filled in
   */
  public static StepPhases of(int steps) {
    return new StepPhases(
        new long[steps],
        new long[steps],
        new long[steps],
        new long[steps],
        new long[steps],
        new long[steps],
        new long[steps]);
  }

  /**
   * @return the steps recorded
   */
  int steps() {
    return startMicros.length;
  }

  /**
   * @param step the step within the stage
   * @return the step's synchronization: send, wait and receive
   */
  long syncNs(int step) {
    return sendNs[step] + waitNs[step] + receiveNs[step];
  }

  /**
   * @param step the step within the stage
   * @return the step's time from its start to the end of its apply phase
   */
  public long totalNs(int step) {
    return dataNs[step] + computeNs[step] + syncNs(step) + applyNs[step];
  }

  static long sum(long[] values) {
    long sum = 0;
    for (long v : values) {
      sum += v;
    }
    return sum;
  }
}
