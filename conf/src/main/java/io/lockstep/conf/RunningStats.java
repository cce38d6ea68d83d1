package io.lockstep.conf;

/** How BatchNorm's running mean and variance are updated across data-parallel replicas. */
public enum RunningStats {
  /**
   * From rank 0's slice alone, as PyTorch's DistributedDataParallel does by broadcasting rank 0's
   * buffers.
   */
  RANK0,
  /** From every slice, weighted by its sample count: the running mean follows the global batch. */
  AVERAGE
}
