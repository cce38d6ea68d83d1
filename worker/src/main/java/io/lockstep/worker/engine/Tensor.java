package io.lockstep.worker.engine;

import io.lockstep.worker.engine.Dnnl.Memory;

/** A value flowing between operations, and the gradient flowing back. */
final class Tensor {
  final long[] dims;
  final Memory data;
  final boolean needsDiff;
  Memory diff;
  int consumersLeft;

  Tensor(long[] dims, Memory data, boolean needsDiff) {
    this.dims = dims;
    this.data = data;
    this.needsDiff = needsDiff;
  }
}
