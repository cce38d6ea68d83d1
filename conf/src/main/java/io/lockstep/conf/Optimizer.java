package io.lockstep.conf;

/** The update rules a job can train with. */
public enum Optimizer {
  /** Plain stochastic gradient descent. */
  SGD(0.05),
  /** SGD with (heavy-ball) momentum, as PyTorch's {@code SGD(momentum=m)}. */
  MOMENTUM(0.05),
  /** SGD with Nesterov momentum. */
  NESTEROV(0.05),
  /** Adam. */
  ADAM(0.001),
  /** AdaGrad. */
  ADAGRAD(0.01),
  /** RMSProp. */
  RMSPROP(0.01);

  private final double usualLearningRate;

  Optimizer(double usualLearningRate) {
    this.usualLearningRate = usualLearningRate;
  }

  /**
   * @return the learning rate a job gets when it names none: PyTorch's defaults for Adam (0.001),
   *     AdaGrad and RMSprop (0.01); the seeds' 0.05 for the SGD family, which has no default
   */
  public double usualLearningRate() {
    return usualLearningRate;
  }
}
