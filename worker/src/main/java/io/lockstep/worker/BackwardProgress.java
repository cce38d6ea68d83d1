package io.lockstep.worker;

/** Receives a replica's gradient as its backward pass finishes it, from the end of the vector. */
@FunctionalInterface
interface BackwardProgress {
  /**
   * The gradient is final from float {@code firstFinal} to its end.
   *
   * @param firstFinal the first float of the finished range
   */
  void finalFrom(int firstFinal);
}
