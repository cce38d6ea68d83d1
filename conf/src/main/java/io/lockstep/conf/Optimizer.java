package io.lockstep.conf;

/** The update rules a job can train with. */
public enum Optimizer {
  /** Plain stochastic gradient descent. */
  SGD,
  /** SGD with (heavy-ball) momentum, as PyTorch's {@code SGD(momentum=m)}. */
  MOMENTUM,
  /** SGD with Nesterov momentum. */
  NESTEROV,
  /** Adam. */
  ADAM,
  /** AdaGrad. */
  ADAGRAD,
  /** RMSProp. */
  RMSPROP
}
