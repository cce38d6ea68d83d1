package io.lockstep.models;

import java.util.Collections;
import java.util.Map;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.shape.Shape;
import org.nd4j.linalg.learning.GradientUpdater;
import org.nd4j.linalg.learning.config.IUpdater;
import org.nd4j.linalg.schedule.ISchedule;

/**
 * Heavy-ball momentum as PyTorch's {@code SGD(momentum=m)} defines it: {@code v = m * v + g; update
 * = lr * v}. Deeplearning4j ships only Nesterov momentum, so the seeds' optimizer needs this.
 * Serialized by Deeplearning4j's JSON through its bean properties.
 */
public final class Momentum implements IUpdater {
  private static final long serialVersionUID = 1L;

  private double learningRate;
  private ISchedule learningRateSchedule;
  private double momentum;

  /** For Deeplearning4j's JSON deserialization. */
  public Momentum() {
    this(0.01, 0.9);
  }

  /**
   * Creates the rule.
   *
   * @param learningRate step size
   * @param momentum decay of the velocity, in [0, 1)
   */
  public Momentum(double learningRate, double momentum) {
    this.learningRate = learningRate;
    this.momentum = momentum;
  }

  /**
   * @return the learning rate
   */
  public double getLearningRate() {
    return learningRate;
  }

  /**
   * @param learningRate the learning rate
   */
  public void setLearningRate(double learningRate) {
    this.learningRate = learningRate;
  }

  /**
   * @return the momentum
   */
  public double getMomentum() {
    return momentum;
  }

  /**
   * @param momentum the momentum
   */
  public void setMomentum(double momentum) {
    this.momentum = momentum;
  }

  /**
   * @return the learning-rate schedule, or null
   */
  public ISchedule getLearningRateSchedule() {
    return learningRateSchedule;
  }

  /**
   * @param schedule the learning-rate schedule, or null
   */
  public void setLearningRateSchedule(ISchedule schedule) {
    this.learningRateSchedule = schedule;
  }

  @Override
  public long stateSize(long numParams) {
    return numParams;
  }

  @Override
  public GradientUpdater<Momentum> instantiate(INDArray viewArray, boolean initializeViewArray) {
    final Updater updater = new Updater(this);
    updater.setStateViewArray(
        viewArray, viewArray.shape(), viewArray.ordering(), initializeViewArray);
    return updater;
  }

  @Override
  public GradientUpdater<Momentum> instantiate(
      Map<String, INDArray> updaterState, boolean initializeStateArrays) {
    final Updater updater = new Updater(this);
    updater.setState(updaterState, initializeStateArrays);
    return updater;
  }

  @Override
  public Momentum clone() {
    final Momentum copy = new Momentum(learningRate, momentum);
    copy.learningRateSchedule = learningRateSchedule == null ? null : learningRateSchedule.clone();
    return copy;
  }

  @Override
  public double getLearningRate(int iteration, int epoch) {
    return learningRateSchedule == null
        ? learningRate
        : learningRateSchedule.valueAt(iteration, epoch);
  }

  @Override
  public boolean hasLearningRate() {
    return true;
  }

  @Override
  public void setLrAndSchedule(double lr, ISchedule lrSchedule) {
    this.learningRate = lr;
    this.learningRateSchedule = lrSchedule;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof Momentum other
        && other.learningRate == learningRate
        && other.momentum == momentum
        && java.util.Objects.equals(other.learningRateSchedule, learningRateSchedule);
  }

  @Override
  public int hashCode() {
    return java.util.Objects.hash(learningRate, momentum, learningRateSchedule);
  }

  private static final class Updater implements GradientUpdater<Momentum> {
    private static final String VELOCITY = "V";
    private final Momentum config;
    private INDArray velocity;

    Updater(Momentum config) {
      this.config = config;
    }

    @Override
    public Momentum getConfig() {
      return config;
    }

    @Override
    public void setState(Map<String, INDArray> stateMap, boolean initialize) {
      if (!stateMap.containsKey(VELOCITY) || stateMap.size() != 1) {
        throw new IllegalStateException(
            "momentum state must hold only [" + VELOCITY + "], it holds " + stateMap.keySet());
      }
      velocity = stateMap.get(VELOCITY);
      if (initialize) {
        velocity.assign(0);
      }
    }

    @Override
    public Map<String, INDArray> getState() {
      return Collections.singletonMap(VELOCITY, velocity);
    }

    @Override
    public void setStateViewArray(
        INDArray viewArray, long[] gradientShape, char gradientOrder, boolean initialize) {
      if (initialize) {
        viewArray.assign(0);
      }
      velocity = Shape.newShapeNoCopy(viewArray, gradientShape, gradientOrder == 'f');
      if (velocity == null) {
        throw new IllegalStateException("could not reshape the momentum state view");
      }
    }

    @Override
    public void applyUpdater(INDArray gradient, int iteration, int epoch) {
      final double lr = config.getLearningRate(iteration, epoch);
      final INDArray g = gradient.reshape(velocity.shape());
      velocity.muli(config.momentum).addi(g);
      g.assign(velocity).muli(lr);
    }
  }
}
