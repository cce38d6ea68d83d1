package io.lockstep.conf;

/** What computes a worker's forward and backward passes. */
public enum ComputeEngine {
  /** oneDNN where the model's layers allow it, else Deeplearning4j, said in the log. */
  AUTO,
  /** oneDNN primitives directly; a model with a layer it cannot compute is refused. */
  ONEDNN,
  /** Deeplearning4j's layers (with their oneDNN helpers). */
  DEEPLEARNING4J
}
