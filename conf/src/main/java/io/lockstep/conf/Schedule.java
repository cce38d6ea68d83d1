package io.lockstep.conf;

/** The shape of the learning rate over training, after any warm-up. */
public enum Schedule {
  /** The base learning rate throughout. */
  CONSTANT,
  /** Multiplied by gamma every step-size epochs, as PyTorch's {@code StepLR}. */
  STEP,
  /** Half a cosine from the base rate down to the minimum over the run's steps. */
  COSINE
}
