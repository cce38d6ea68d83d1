package io.lockstep.worker.input;

import io.lockstep.data.Shapes;
import java.util.List;

/**
 * Scenes of {@link Shapes}, drawn on demand, as a detector trains on them: normalized RGB features
 * and YOLOv2's label tensor {@code [n, 4 + classes, grid, grid]}: in the cell holding a shape's
 * centre, its box corners in grid cells (x1, y1, x2, y2) and its class one-hot; zeros elsewhere.
 */
public final class SceneSamples implements Samples {
  /**
   * The test scenes' seed. Training scenes are numbers {@code 0 .. n-1} of the job's seed; test
   * scenes are numbers from {@link #TEST_FIRST} of this seed, a range no training set reaches, so
   * every job is scored on the same scenes.
   */
  static final long TEST_SEED = 0;

  /** The first test scene's number. */
  static final long TEST_FIRST = 1L << 40;

  private final long seed;
  private final long first;
  private final int count;
  private final int size;
  private final int grid;
  private final ChannelNormalization normalization;

  /**
   * Creates the scenes.
   *
   * @param seed the set's seed
   * @param first the first scene's number
   * @param count how many scenes
   * @param size the image side in pixels: the model's input
   * @param grid cells per side of the model's output
   * @param mean per-channel normalization mean, pixels in [0, 1]
   * @param std per-channel normalization standard deviation
   */
  public SceneSamples(
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

  /** The class of the scene's first shape: a detector has no one label per image. */
  @Override
  public int label(int index) {
    return scene(index).boxes().get(0).kind();
  }

  /**
   * The shapes of one scene.
   *
   * @param index the scene
   * @return its boxes, in pixels
   */
  public List<Shapes.Box> boxes(int index) {
    return scene(index).boxes();
  }

  /**
   * The pixels covered by one grid cell.
   *
   * @return the cell's side in pixels
   */
  public double cellPixels() {
    return (double) size / grid;
  }

  /** Scenes carry no random transform: a scene is the same in every epoch. */
  @Override
  public void features(int[] indices, int epoch, float[] into) {
    final int plane = size * size;
    for (int i = 0; i < indices.length; i++) {
      final byte[] pixels = scene(indices[i]).pixels();
      normalization.apply(pixels, 0, plane, into, i * 3 * plane);
    }
  }

  @Override
  public long[] featureShape(int rows) {
    return new long[] {rows, 3, size, size};
  }

  /**
   * YOLOv2's labels: see the class comment. Two shapes never share a centre cell in practice (they
   * overlap by at most a tenth of the smaller one); if they do, the later one is kept.
   *
   * @param indices the scenes
   * @param classes the model's classes, at least {@link Shapes#KINDS}' count
   * @param into {@code [n, 4 + classes, grid, grid]}, row-major
   */
  @Override
  public void labels(int[] indices, int classes, float[] into) {
    java.util.Arrays.fill(into, 0f);
    for (int i = 0; i < indices.length; i++) {
      for (Shapes.Box box : boxes(indices[i])) {
        label(into, i, box, classes, grid, cellPixels());
      }
    }
  }

  @Override
  public long[] labelShape(int rows, int classes) {
    return new long[] {rows, 4 + classes, grid, grid};
  }

  /**
   * Writes one shape into YOLOv2's labels: in the cell holding its centre, its corners in grid
   * cells and its class one-hot, replacing what that cell held.
   *
   * @param y the labels {@code [n, 4 + classes, grid, grid]}, channels first
   * @param i the image
   * @param box the shape, in pixels
   * @param classes the model's classes
   * @param grid cells per side
   * @param cell a cell's side in pixels
   */
  static void label(float[] y, int i, Shapes.Box box, int classes, int grid, double cell) {
    final int cells = grid * grid;
    final int depth = 4 + classes;
    final int gx = (int) ((box.x1() + box.x2()) / 2.0 / cell);
    final int gy = (int) ((box.y1() + box.y2()) / 2.0 / cell);
    final int at = i * depth * cells + gy * grid + gx;
    for (int k = 0; k < depth; k++) {
      y[at + k * cells] = 0f;
    }
    y[at] = (float) (box.x1() / cell);
    y[at + cells] = (float) (box.y1() / cell);
    y[at + 2 * cells] = (float) (box.x2() / cell);
    y[at + 3 * cells] = (float) (box.y2() / cell);
    y[at + (4 + box.kind()) * cells] = 1f;
  }

  private Shapes.Scene scene(int index) {
    return Shapes.scene(seed, first + index, size);
  }
}
