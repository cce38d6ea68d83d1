package io.lockstep.data;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Scenes of simple shapes for detection and grounding, drawn from a seed: each scene is an RGB
 * image of {@code size x size} pixels on a noisy light background with 1 to 3 shapes (circle,
 * square, triangle) in red, green or blue, of 10 to 45% of the image's side, overlapping each other
 * by at most a tenth of the smaller box. Scene {@code i} of seed {@code s} is the same on every
 * machine and in every run, so a training set is {@code (seed, 0 .. n-1)} and a test set another
 * seed's, with nothing stored.
 */
public final class Shapes {
  /** The shape classes, in label order. */
  public static final List<String> KINDS = List.of("circle", "square", "triangle");

  /** The colors, in order. */
  public static final List<String> COLORS = List.of("red", "green", "blue");

  private static final int[][] RGB = {{220, 40, 40}, {40, 170, 60}, {40, 70, 220}};
  private static final int MAX_SHAPES = 3;
  private static final double MAX_OVERLAP = 0.1;
  private static final int PLACEMENT_TRIES = 50;

  private Shapes() {}

  /**
   * One shape's box, in pixels: {@code [x1, x2) x [y1, y2)}.
   *
   * @param kind index into {@link #KINDS}, the detection class
   * @param color index into {@link #COLORS}
   * @param x1 left edge
   * @param y1 top edge
   * @param x2 right edge, exclusive
   * @param y2 bottom edge, exclusive
   */
  public record Box(int kind, int color, int x1, int y1, int x2, int y2) {
    /**
     * @return the box's area in pixels
     */
    public int area() {
      return (x2 - x1) * (y2 - y1);
    }

    /**
     * Intersection over union with another box.
     *
     * @param other a box
     * @return IoU in [0, 1]
     */
    public double iou(Box other) {
      final int w = Math.min(x2, other.x2) - Math.max(x1, other.x1);
      final int h = Math.min(y2, other.y2) - Math.max(y1, other.y1);
      if (w <= 0 || h <= 0) {
        return 0;
      }
      final double intersection = (double) w * h;
      return intersection / (area() + other.area() - intersection);
    }

    private double overlapOfSmaller(Box other) {
      final int w = Math.min(x2, other.x2) - Math.max(x1, other.x1);
      final int h = Math.min(y2, other.y2) - Math.max(y1, other.y1);
      return w <= 0 || h <= 0 ? 0 : (double) w * h / Math.min(area(), other.area());
    }
  }

  /**
   * A drawn scene.
   *
   * @param pixels {@code 3 * size * size} bytes, channel-major (red plane, green, blue)
   * @param size the image's side in pixels
   * @param boxes the shapes, in drawing order
   */
  public record Scene(byte[] pixels, int size, List<Box> boxes) {}

  /**
   * Draws scene {@code index} of {@code seed}.
   *
   * @param seed the set's seed
   * @param index the scene's number in the set
   * @param size the image side in pixels, at least 16
   * @return the scene
   */
  public static Scene scene(long seed, long index, int size) {
    if (size < 16) {
      throw new IllegalArgumentException("scenes need at least 16x16 pixels, got " + size);
    }
    final SplittableRandom random = new SplittableRandom(seed * 0x9E3779B97F4A7C15L + index);
    final int plane = size * size;
    final byte[] pixels = new byte[3 * plane];
    for (int p = 0; p < plane; p++) {
      final int gray = 200 + random.nextInt(40);
      for (int c = 0; c < 3; c++) {
        pixels[c * plane + p] = (byte) Math.min(255, gray + random.nextInt(16) - 8);
      }
    }
    final int count = 1 + random.nextInt(MAX_SHAPES);
    final List<Box> boxes = new ArrayList<>();
    for (int tries = 0; boxes.size() < count && tries < PLACEMENT_TRIES; tries++) {
      final int side = (int) Math.round(size * (0.10 + random.nextDouble() * 0.35));
      final int x = random.nextInt(size - side + 1);
      final int y = random.nextInt(size - side + 1);
      final Box box =
          new Box(
              random.nextInt(KINDS.size()),
              random.nextInt(COLORS.size()),
              x,
              y,
              x + side,
              y + side);
      if (boxes.stream().allMatch(b -> b.overlapOfSmaller(box) <= MAX_OVERLAP)) {
        boxes.add(box);
        draw(pixels, size, box);
      }
    }
    return new Scene(pixels, size, List.copyOf(boxes));
  }

  /** Fills the shape's pixels inside its box with its color. */
  private static void draw(byte[] pixels, int size, Box box) {
    final int plane = size * size;
    final double side = box.x2() - box.x1();
    final double cx = box.x1() + side / 2;
    final double cy = box.y1() + side / 2;
    for (int y = box.y1(); y < box.y2(); y++) {
      for (int x = box.x1(); x < box.x2(); x++) {
        final double u = (x + 0.5 - box.x1()) / side;
        final double v = (y + 0.5 - box.y1()) / side;
        final boolean inside =
            switch (KINDS.get(box.kind())) {
              case "circle" -> Math.hypot(x + 0.5 - cx, y + 0.5 - cy) <= side / 2;
              case "square" -> true;
                // apex at the top middle, base along the bottom edge
              default -> Math.abs(u - 0.5) <= v / 2;
            };
        if (inside) {
          for (int c = 0; c < 3; c++) {
            pixels[c * plane + y * size + x] = (byte) RGB[box.color()][c];
          }
        }
      }
    }
  }
}
