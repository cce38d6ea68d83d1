package io.lockstep.models;

/**
 * Sums SyncBatchNorm's per-channel statistics over every replica of a step. Every replica makes the
 * same calls, with the same lengths, in the same order: two per synchronized layer on the forward
 * pass (in the graph's topological order) and one on the backward pass (in reverse order).
 */
public interface StatisticsReducer {
  /**
   * Replaces {@code values} with their sum over all replicas, in place.
   *
   * @param values this replica's sums
   */
  void sum(float[] values);

  /**
   * @return the samples of the current step's global batch, over all replicas
   */
  int globalBatchSize();
}
