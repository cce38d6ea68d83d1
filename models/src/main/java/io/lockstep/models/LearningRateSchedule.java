package io.lockstep.models;

import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Keys;
import io.lockstep.conf.Schedule;
import java.util.Objects;
import org.nd4j.linalg.schedule.ISchedule;

/**
 * The learning rate at a global step and epoch, as the job's schedule defines it. With base rate
 * {@code lr} (already multiplied by batch / reference batch under the linear scaling rule), warm-up
 * {@code w} steps, {@code T} steps in the run, step {@code s} (from 0) of epoch {@code e} (from 0):
 *
 * <ul>
 *   <li>constant: {@code lr}
 *   <li>step: {@code lr * gamma^floor(e / stepSize)} (PyTorch's {@code StepLR} stepped per epoch)
 *   <li>cosine: {@code min + (lr - min) * (1 + cos(pi * t / (T - w))) / 2} with {@code t = max(0, s
 *       - w)} (PyTorch's {@code CosineAnnealingLR} stepped per step, after the warm-up)
 *   <li>warm-up, on top of any of them: for {@code s < w} the rate is multiplied by {@code (s + 1)
 *       / w} (Goyal et al. 2017, gradual warm-up)
 * </ul>
 *
 * <p>Deeplearning4j's updaters call {@link #valueAt} with the network's iteration count (the global
 * step) and epoch count; the bean properties are what its JSON stores.
 */
public final class LearningRateSchedule implements ISchedule {
  private static final long serialVersionUID = 1L;

  private Schedule kind = Schedule.CONSTANT;
  private double base;
  private int stepSize = 1;
  private double gamma = 1;
  private double minimum;
  private int warmupSteps;
  private long totalSteps = 1;

  /** For Deeplearning4j's JSON deserialization. */
  public LearningRateSchedule() {}

  /**
   * The job's schedule.
   *
   * @param job the job
   * @param totalSteps the steps of the whole run (epochs x steps per epoch)
   * @return the schedule
   */
  public static LearningRateSchedule of(JobConfig job, long totalSteps) {
    final LearningRateSchedule schedule = new LearningRateSchedule();
    schedule.kind = job.get(Keys.SCHEDULE);
    schedule.base = job.baseLearningRate();
    schedule.stepSize = job.get(Keys.SCHEDULE_STEP_SIZE);
    schedule.gamma = job.get(Keys.SCHEDULE_GAMMA);
    schedule.minimum = job.get(Keys.SCHEDULE_MIN_LEARNING_RATE);
    schedule.warmupSteps = job.get(Keys.WARMUP_STEPS);
    schedule.totalSteps = Math.max(1, totalSteps);
    return schedule;
  }

  @Override
  public double valueAt(int iteration, int epoch) {
    final double scheduled =
        switch (kind) {
          case CONSTANT -> base;
          case STEP -> base * Math.pow(gamma, Math.floorDiv(epoch, stepSize));
          case COSINE -> {
            final long span = totalSteps - warmupSteps;
            if (span <= 0) {
              yield base;
            }
            final long t = Math.min(span, Math.max(0, (long) iteration - warmupSteps));
            yield minimum + (base - minimum) * (1 + Math.cos(Math.PI * t / span)) / 2;
          }
        };
    return iteration < warmupSteps ? scheduled * (iteration + 1) / warmupSteps : scheduled;
  }

  @Override
  public LearningRateSchedule clone() {
    try {
      return (LearningRateSchedule) super.clone(); // every field is a value
    } catch (CloneNotSupportedException e) {
      throw new AssertionError(e);
    }
  }

  /**
   * @return the schedule's shape
   */
  public Schedule getKind() {
    return kind;
  }

  /**
   * @param kind the schedule's shape
   */
  public void setKind(Schedule kind) {
    this.kind = kind;
  }

  /**
   * @return the base learning rate
   */
  public double getBase() {
    return base;
  }

  /**
   * @param base the base learning rate
   */
  public void setBase(double base) {
    this.base = base;
  }

  /**
   * @return epochs between decays (step schedule)
   */
  public int getStepSize() {
    return stepSize;
  }

  /**
   * @param stepSize epochs between decays (step schedule)
   */
  public void setStepSize(int stepSize) {
    this.stepSize = stepSize;
  }

  /**
   * @return the decay factor (step schedule)
   */
  public double getGamma() {
    return gamma;
  }

  /**
   * @param gamma the decay factor (step schedule)
   */
  public void setGamma(double gamma) {
    this.gamma = gamma;
  }

  /**
   * @return the final rate (cosine schedule)
   */
  public double getMinimum() {
    return minimum;
  }

  /**
   * @param minimum the final rate (cosine schedule)
   */
  public void setMinimum(double minimum) {
    this.minimum = minimum;
  }

  /**
   * @return warm-up steps
   */
  public int getWarmupSteps() {
    return warmupSteps;
  }

  /**
   * @param warmupSteps warm-up steps
   */
  public void setWarmupSteps(int warmupSteps) {
    this.warmupSteps = warmupSteps;
  }

  /**
   * @return the run's steps
   */
  public long getTotalSteps() {
    return totalSteps;
  }

  /**
   * @param totalSteps the run's steps
   */
  public void setTotalSteps(long totalSteps) {
    this.totalSteps = totalSteps;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof LearningRateSchedule other
        && other.kind == kind
        && other.base == base
        && other.stepSize == stepSize
        && other.gamma == gamma
        && other.minimum == minimum
        && other.warmupSteps == warmupSteps
        && other.totalSteps == totalSteps;
  }

  @Override
  public int hashCode() {
    return Objects.hash(kind, base, stepSize, gamma, minimum, warmupSteps, totalSteps);
  }

  @Override
  public String toString() {
    return "LearningRateSchedule[" + kind + ", base " + base + ", warm-up " + warmupSteps + "]";
  }
}
