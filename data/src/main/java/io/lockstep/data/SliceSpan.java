package io.lockstep.data;

/**
 * The slices of every global batch one worker computes when a stage runs on fewer workers than the
 * job has slices ({@code lockstep.workers}), as after a host was lost for good: worker 0 computes
 * the first slices, one more for each worker missing, and every other worker one slice.
 *
 * <p>Only this cut keeps every step's bits: a worker adds its slices' gradient sums in order, as
 * micro-batches, and the parameter server adds the workers' sums in rank order, so the global sum
 * is {@code ((g0 + g1) + g2) + ...} over the slices exactly as it is with one worker per slice. A
 * worker other than the first that summed two slices would add them before the sum of the slices
 * ahead of them reached it, a different order of floating-point additions.
 *
 * @param first the first slice
 * @param count the number of slices, at least 1
 */
public record SliceSpan(int first, int count) {
  /**
   * The slices worker {@code rank} of {@code workers} computes.
   *
   * @param rank the worker, in [0, workers)
   * @param workers the stage's workers, in [1, slices]
   * @param slices the slices of every global batch: the job's workers
   * @return its span
   */
  public static SliceSpan of(int rank, int workers, int slices) {
    if (workers < 1 || workers > slices || rank < 0 || rank >= workers) {
      throw new IllegalArgumentException(
          "rank " + rank + " of " + workers + " workers over " + slices + " slices");
    }
    final int missing = slices - workers;
    return rank == 0 ? new SliceSpan(0, 1 + missing) : new SliceSpan(rank + missing, 1);
  }

  /**
   * @return one past the last slice
   */
  public int end() {
    return first + count;
  }
}
