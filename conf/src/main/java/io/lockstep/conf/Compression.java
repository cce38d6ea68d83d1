package io.lockstep.conf;

/** How workers encode what they send to the parameter server. */
public enum Compression {
  /** float32, sent straight from the gradient's memory. */
  NONE,
  /** IEEE half precision with a power-of-two scale per chunk, both ways. */
  FP16,
  /** bfloat16 (float32's exponent, 8 bits of mantissa), both ways. */
  BF16,
  /** The largest {@code lockstep.ps.top-k-ratio} of each chunk, the rest kept as a residual. */
  TOP_K,
  /**
   * Elements whose magnitude reaches {@code lockstep.ps.threshold}, the rest kept as a residual.
   */
  THRESHOLD
}
