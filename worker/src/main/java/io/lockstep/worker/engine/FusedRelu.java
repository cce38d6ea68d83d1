package io.lockstep.worker.engine;

/**
 * A ReLU fused into a convolution or dense layer as oneDNN's post-op: x for x > 0, {@code slope} x
 * below (0 for ReLU itself, Deeplearning4j's alpha for leaky ReLU). Its backward pass reads the
 * layer's output, which has the input's sign.
 *
 * @param slope the slope below zero, in [0, 1)
 */
record FusedRelu(float slope) {
  /** max(0, x). */
  static final FusedRelu PLAIN = new FusedRelu(0f);
}
