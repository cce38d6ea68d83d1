package io.lockstep.data;

import java.util.SplittableRandom;

/**
 * The sample order of one epoch and how it is cut into global batches and worker slices. Every
 * process derives the same plan from the same numbers, so nothing but the seed travels.
 *
 * <p>The order is a Fisher-Yates shuffle seeded by (seed, epoch): every sample once per epoch, a
 * different order each epoch, the same order for the same seed. Global batch {@code s} covers
 * positions {@code [s * B, min(n, (s + 1) * B))}; within it, worker {@code r} of {@code N} takes a
 * contiguous slice, the first {@code b mod N} workers one sample more than the others, so slices
 * differ by at most one sample and together cover the batch exactly.
 */
public final class EpochPlan {
  private final int[] order;
  private final int batchSize;
  private final int workers;

  private EpochPlan(int[] order, int batchSize, int workers) {
    this.order = order;
    this.batchSize = batchSize;
    this.workers = workers;
  }

  /**
   * Plans one epoch.
   *
   * @param seed the job's seed
   * @param epoch the epoch, from 0
   * @param samples the training set's size
   * @param batchSize the global batch
   * @param workers the number of workers
   * @return the plan
   */
  public static EpochPlan of(long seed, int epoch, int samples, int batchSize, int workers) {
    if (samples <= 0 || batchSize <= 0 || workers <= 0) {
      throw new IllegalArgumentException(
          "samples="
              + samples
              + ", batchSize="
              + batchSize
              + ", workers="
              + workers
              + " must be > 0");
    }
    final int[] order = new int[samples];
    for (int i = 0; i < samples; i++) {
      order[i] = i;
    }
    final SplittableRandom random = new SplittableRandom(mix(seed, epoch));
    for (int i = samples - 1; i > 0; i--) {
      final int j = random.nextInt(i + 1);
      final int t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
    return new EpochPlan(order, batchSize, workers);
  }

  private static long mix(long seed, int epoch) {
    return seed * 0x9E3779B97F4A7C15L + epoch * 0xBF58476D1CE4E5B9L + 0x94D049BB133111EBL;
  }

  /**
   * @return the number of global batches in the epoch, the last possibly smaller
   */
  public int steps() {
    return (order.length + batchSize - 1) / batchSize;
  }

  /**
   * @return samples in global batch {@code step}
   */
  public int batchSamples(int step) {
    return Math.min(batchSize, order.length - step * batchSize);
  }

  /**
   * The samples worker {@code rank} trains on in global batch {@code step}.
   *
   * @param step the batch within the epoch
   * @param rank the worker
   * @return dataset indices, possibly none when the batch is smaller than the number of workers
   */
  public int[] slice(int step, int rank) {
    final int batch = batchSamples(step);
    final int from = step * batchSize + partStart(batch, workers, rank);
    final int[] indices = new int[partSize(batch, workers, rank)];
    System.arraycopy(order, from, indices, 0, indices.length);
    return indices;
  }

  /**
   * The samples of slices {@code [span.first(), span.end())} of global batch {@code step}, in slice
   * order: what one worker computing those slices trains on.
   *
   * @param step the batch within the epoch
   * @param span the slices
   * @return dataset indices, possibly none when the batch is smaller than the number of slices
   */
  public int[] slices(int step, SliceSpan span) {
    final int batch = batchSamples(step);
    final int from = partStart(batch, workers, span.first());
    final int to = span.end() == workers ? batch : partStart(batch, workers, span.end());
    final int[] indices = new int[to - from];
    System.arraycopy(order, step * batchSize + from, indices, 0, indices.length);
    return indices;
  }

  /**
   * @return the slices each global batch is cut into: the job's workers
   */
  public int slices() {
    return workers;
  }

  /**
   * The size of part {@code index} when {@code samples} are cut into {@code parts} contiguous parts
   * as a global batch is cut into slices: the first {@code samples mod parts} parts one sample
   * larger than the others. A worker cuts its slice into micro-batches by the same rule.
   *
   * @param samples the samples to cut
   * @param parts the number of parts
   * @param index the part
   * @return its samples, possibly none when there are fewer samples than parts
   */
  public static int partSize(int samples, int parts, int index) {
    return samples / parts + (index < samples % parts ? 1 : 0);
  }

  /**
   * Where part {@code index} starts when {@code samples} are cut as {@link #partSize} cuts them.
   *
   * @param samples the samples to cut
   * @param parts the number of parts
   * @param index the part
   * @return the offset of its first sample
   */
  public static int partStart(int samples, int parts, int index) {
    return index * (samples / parts) + Math.min(index, samples % parts);
  }

  /**
   * All samples of global batch {@code step}, in slice order: what one process training the whole
   * batch sees.
   *
   * @param step the batch within the epoch
   * @return dataset indices
   */
  public int[] batch(int step) {
    final int[] indices = new int[batchSamples(step)];
    System.arraycopy(order, step * batchSize, indices, 0, indices.length);
    return indices;
  }
}
