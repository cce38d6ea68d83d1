package io.lockstep.models;

import org.nd4j.linalg.learning.config.AdaGrad;
import org.nd4j.linalg.schedule.ISchedule;

/**
 * AdaGrad that keeps its learning-rate schedule when cloned. Deeplearning4j M2.1's {@code
 * AdaGrad.clone()} drops the schedule, and every layer's configuration is a clone, so a scheduled
 * AdaGrad ran with a NaN learning rate; this subclass clones the schedule too. Serialized by
 * Deeplearning4j's JSON through the inherited bean properties.
 */
public final class ScheduledAdaGrad extends AdaGrad {
  private static final long serialVersionUID = 1L;

  /** For Deeplearning4j's JSON deserialization. */
  public ScheduledAdaGrad() {
    super(DEFAULT_ADAGRAD_LEARNING_RATE, DEFAULT_ADAGRAD_EPSILON);
  }

  /**
   * Creates the rule.
   *
   * @param schedule the learning rate by iteration and epoch
   * @param epsilon added to the root of the accumulated squares
   */
  public ScheduledAdaGrad(ISchedule schedule, double epsilon) {
    super(schedule, epsilon);
  }

  @Override
  public ScheduledAdaGrad clone() {
    final ScheduledAdaGrad copy = new ScheduledAdaGrad();
    copy.setLearningRate(getLearningRate());
    copy.setLearningRateSchedule(
        getLearningRateSchedule() == null ? null : getLearningRateSchedule().clone());
    copy.setEpsilon(getEpsilon());
    return copy;
  }
}
