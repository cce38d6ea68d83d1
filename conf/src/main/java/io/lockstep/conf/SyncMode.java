package io.lockstep.conf;

/** How the replicas synchronize through the parameter server. */
public enum SyncMode {
  /** Every step: the gradient sum over all workers, added in rank order (DataParallel). */
  SYNC,
  /**
   * Downpour-style: each worker applies its own optimizer to its slice, pushes the update scaled by
   * its share of the global batch, and continues from the server's parameters at once.
   */
  ASYNC,
  /** As {@link #ASYNC}, but no worker runs more than {@code lockstep.ps.staleness} steps ahead. */
  STALE_SYNC,
  /** Each worker steps on its own; every {@code lockstep.ps.local-steps} the replicas average. */
  LOCAL_SGD
}
