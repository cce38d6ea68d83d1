package io.lockstep.conf;

/** The number format of a worker's convolutions and matrix products. */
public enum Precision {
  /** float32 throughout. */
  FP32,
  /**
   * bfloat16 inputs and weights with float32 accumulation and outputs, on CPUs with AVX512_BF16 or
   * AMX; every other operation, the master weights, the optimizer and the exchange in float32.
   */
  BF16
}
