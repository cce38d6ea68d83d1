package io.lockstep.worker.input;

import io.lockstep.data.Grounding;
import io.lockstep.data.Shapes;

/**
 * {@link Grounding} examples, drawn on demand, as a grounding model trains on them: each input row
 * is the scene's normalized pixels (channels first) followed by the phrase's token ids; the labels
 * are YOLOv2's, as {@link SceneSamples} makes them, for the named shape alone: a one-stage
 * grounding model is a detector of the one shape the phrase names.
 */
public final class PhraseSamples implements Samples {
  private final long seed;
  private final long first;
  private final int count;
  private final int size;
  private final int grid;
  private final ChannelNormalization normalization;

  /**
   * Creates the examples.
   *
   * @param seed the set's seed
   * @param first the first example's number
   * @param count how many examples
   * @param size the image side in pixels: the model's input
   * @param grid cells per side of the model's output
   * @param mean per-channel normalization mean, pixels in [0, 1]
   * @param std per-channel normalization standard deviation
   */
  public PhraseSamples(
      long seed, long first, int count, int size, int grid, double[] mean, double[] std) {
    this.seed = seed;
    this.first = first;
    this.count = count;
    this.size = size;
    this.grid = grid;
    this.normalization = new ChannelNormalization(mean, std);
  }

  @Override
  public int count() {
    return count;
  }

  /** The named shape's class: a grounding model has no one class per image. */
  @Override
  public int label(int index) {
    return example(index).target().kind();
  }

  /**
   * One example.
   *
   * @param index its number in this set
   * @return the scene, the target and the phrase
   */
  public Grounding.Example example(int index) {
    return Grounding.example(seed, first + index, size);
  }

  /**
   * The named shape's box.
   *
   * @param index the example
   * @return {@code x1, y1, x2, y2} as fractions of the side
   */
  public double[] box(int index) {
    final Shapes.Box box = example(index).target();
    return new double[] {
      (double) box.x1() / size,
      (double) box.y1() / size,
      (double) box.x2() / size,
      (double) box.y2() / size
    };
  }

  /** Examples carry no random transform: one is the same in every epoch. */
  @Override
  public void features(int[] indices, int epoch, float[] into) {
    final int plane = size * size;
    final int row = 3 * plane + Grounding.PHRASE_TOKENS;
    for (int i = 0; i < indices.length; i++) {
      final Grounding.Example example = example(indices[i]);
      final byte[] pixels = example.scene().pixels();
      final int to = i * row;
      normalization.apply(pixels, 0, plane, into, to);
      for (int t = 0; t < Grounding.PHRASE_TOKENS; t++) {
        into[to + 3 * plane + t] = example.tokens()[t];
      }
    }
  }

  @Override
  public long[] featureShape(int rows) {
    return new long[] {rows, 3 * size * size + Grounding.PHRASE_TOKENS};
  }

  /**
   * YOLOv2's labels for the named shapes.
   *
   * @param indices the examples
   * @param classes the model's classes, at least {@link Shapes#KINDS}' count
   * @param into {@code [n, 4 + classes, grid, grid]}, row-major: the named shape in the cell
   *     holding its centre
   */
  @Override
  public void labels(int[] indices, int classes, float[] into) {
    java.util.Arrays.fill(into, 0f);
    for (int i = 0; i < indices.length; i++) {
      SceneSamples.label(
          into, i, example(indices[i]).target(), classes, grid, (double) size / grid);
    }
  }

  @Override
  public long[] labelShape(int rows, int classes) {
    return new long[] {rows, 4 + classes, grid, grid};
  }
}
