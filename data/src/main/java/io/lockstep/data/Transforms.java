package io.lockstep.data;

import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * The seeds' image transforms, as torchvision defines them: {@link #resize}, {@link #centerCrop},
 * {@link #randomResizedCrop}, {@link #randomHorizontalFlip}, {@link #toTensor}, {@link #normalize}.
 * Random ones draw from the generator {@link Pipeline#apply} seeds from (job seed, epoch, image):
 * the same seed gives the same images whichever worker or thread computes them, and a new epoch
 * gives new crops. Resizing is bilinear with pixel centres at half-integers (OpenCV's and
 * torchvision's tensor convention, without antialiasing), so results match PIL's only roughly.
 */
public final class Transforms {

  /** One transform: an image and the image's random generator in, an image out. */
  @FunctionalInterface
  public interface Transform extends java.io.Serializable {
    /**
     * Applies the transform.
     *
     * @param image the image
     * @param random the image's generator (unused by deterministic transforms)
     * @return the transformed image
     */
    Image apply(Image image, SplittableRandom random);
  }

  /**
   * Transforms in order, with the per-image generator.
   *
   * @param steps the transforms
   */
  public record Pipeline(List<Transform> steps) implements java.io.Serializable {
    /**
     * Transforms one image of one epoch.
     *
     * @param image the decoded image
     * @param seed the job's seed
     * @param epoch the epoch, from 0
     * @param index the image's index in its split
     * @return the transformed image
     */
    public Image apply(Image image, long seed, int epoch, long index) {
      final SplittableRandom random =
          new SplittableRandom(mix(mix(seed ^ 0x5DEECE66DL, epoch), index));
      Image out = image;
      for (Transform step : steps) {
        out = step.apply(out, random);
      }
      return out;
    }

    private static long mix(long a, long b) {
      long z = a * 0x9E3779B97F4A7C15L + b;
      z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
      z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
      return z ^ (z >>> 31);
    }
  }

  private Transforms() {}

  /**
   * The pipeline of {@code transforms}.
   *
   * @param transforms in order
   * @return the pipeline
   */
  public static Pipeline compose(Transform... transforms) {
    return new Pipeline(List.of(transforms));
  }

  /**
   * Resize: the shorter side to {@code size}, the other keeping the aspect ratio (truncated, as
   * torchvision does).
   *
   * @param size the shorter side's length
   * @return the transform
   */
  public static Transform resize(int size) {
    positive(size, "resize");
    return (image, random) -> {
      final int h = image.height();
      final int w = image.width();
      if (h <= w) {
        return bilinear(image, 0, 0, h, w, size, (int) ((long) size * w / h));
      }
      return bilinear(image, 0, 0, h, w, (int) ((long) size * h / w), size);
    };
  }

  /**
   * CenterCrop: the central {@code size x size} square, offsets rounded as torchvision rounds them
   * (half to even).
   *
   * @param size the side
   * @return the transform
   * @throws IllegalArgumentException at apply time when the image is smaller than {@code size}
   */
  public static Transform centerCrop(int size) {
    positive(size, "center crop");
    return (image, random) -> {
      if (image.height() < size || image.width() < size) {
        throw new IllegalArgumentException(
            "center crop "
                + size
                + " of a "
                + image.height()
                + "x"
                + image.width()
                + " image; resize to at least "
                + size
                + " first");
      }
      // Python's round, half to even, as torchvision's int(round((h - size) / 2.0))
      final int top = (int) Math.rint((image.height() - size) / 2.0);
      final int left = (int) Math.rint((image.width() - size) / 2.0);
      return crop(image, top, left, size, size);
    };
  }

  /**
   * RandomResizedCrop with torchvision's defaults: a crop of 8% to 100% of the area and an aspect
   * ratio between 3/4 and 4/3 (log-uniform), up to 10 tries, else the central crop of the nearest
   * allowed ratio; resized to {@code size x size}.
   *
   * @param size the output side
   * @return the transform
   */
  public static Transform randomResizedCrop(int size) {
    return randomResizedCrop(size, 0.08, 1.0, 3.0 / 4.0, 4.0 / 3.0);
  }

  /**
   * RandomResizedCrop.
   *
   * @param size the output side
   * @param minScale the smallest fraction of the area
   * @param maxScale the largest fraction of the area
   * @param minRatio the smallest width / height
   * @param maxRatio the largest width / height
   * @return the transform
   */
  public static Transform randomResizedCrop(
      int size, double minScale, double maxScale, double minRatio, double maxRatio) {
    positive(size, "random resized crop");
    if (!(0 < minScale && minScale <= maxScale && maxScale <= 1)) {
      throw new IllegalArgumentException(
          "random resized crop scale ["
              + minScale
              + ", "
              + maxScale
              + "]: need 0 < min <= max <= 1");
    }
    if (!(0 < minRatio && minRatio <= maxRatio)) {
      throw new IllegalArgumentException(
          "random resized crop ratio [" + minRatio + ", " + maxRatio + "]: need 0 < min <= max");
    }
    return (image, random) -> {
      final int h = image.height();
      final int w = image.width();
      final double area = (double) h * w;
      final double logMin = Math.log(minRatio);
      final double logMax = Math.log(maxRatio);
      for (int attempt = 0; attempt < 10; attempt++) {
        final double target = area * uniform(random, minScale, maxScale);
        final double ratio = Math.exp(uniform(random, logMin, logMax));
        final int cw = (int) Math.round(Math.sqrt(target * ratio));
        final int ch = (int) Math.round(Math.sqrt(target / ratio));
        if (0 < cw && cw <= w && 0 < ch && ch <= h) {
          final int top = random.nextInt(h - ch + 1);
          final int left = random.nextInt(w - cw + 1);
          return bilinear(image, top, left, ch, cw, size, size);
        }
      }
      final double imageRatio = (double) w / h;
      int cw = w;
      int ch = h;
      if (imageRatio < minRatio) {
        ch = (int) Math.round(w / minRatio);
      } else if (imageRatio > maxRatio) {
        cw = (int) Math.round(h * maxRatio);
      }
      return bilinear(image, (h - ch) / 2, (w - cw) / 2, ch, cw, size, size);
    };
  }

  /**
   * RandomHorizontalFlip with probability {@code p}.
   *
   * @param p the probability of a flip
   * @return the transform
   */
  public static Transform randomHorizontalFlip(double p) {
    if (!(0 <= p && p <= 1)) {
      throw new IllegalArgumentException("flip probability " + p + ": need 0 <= p <= 1");
    }
    return (image, random) -> random.nextDouble() < p ? flip(image) : image;
  }

  /**
   * ToTensor: 0-255 to [0, 1].
   *
   * @return the transform
   */
  public static Transform toTensor() {
    return (image, random) -> {
      final float[] out = image.pixels().clone();
      for (int i = 0; i < out.length; i++) {
        out[i] /= 255f;
      }
      return new Image(out, image.channels(), image.height(), image.width());
    };
  }

  /**
   * Normalize: per channel, subtract the mean and divide by the standard deviation.
   *
   * @param mean one per channel
   * @param std one per channel, positive
   * @return the transform
   */
  public static Transform normalize(double[] mean, double[] std) {
    if (mean.length != std.length || mean.length == 0) {
      throw new IllegalArgumentException(
          "normalize: " + mean.length + " means and " + std.length + " stds; give one per channel");
    }
    for (double s : std) {
      if (!(s > 0)) {
        throw new IllegalArgumentException(
            "normalize: std " + Arrays.toString(std) + " must be > 0");
      }
    }
    final double[] m = mean.clone();
    final double[] s = std.clone();
    return (image, random) -> {
      if (image.channels() != m.length) {
        throw new IllegalArgumentException(
            "normalize with "
                + m.length
                + " channel means, but the image has "
                + image.channels()
                + " channels");
      }
      final float[] out = image.pixels().clone();
      final int plane = image.height() * image.width();
      for (int c = 0; c < m.length; c++) {
        for (int i = c * plane; i < (c + 1) * plane; i++) {
          out[i] = (float) ((out[i] - m[c]) / s[c]);
        }
      }
      return new Image(out, image.channels(), image.height(), image.width());
    };
  }

  private static Image crop(Image image, int top, int left, int h, int w) {
    final float[] out = new float[image.channels() * h * w];
    for (int c = 0; c < image.channels(); c++) {
      for (int y = 0; y < h; y++) {
        System.arraycopy(
            image.pixels(),
            (c * image.height() + top + y) * image.width() + left,
            out,
            (c * h + y) * w,
            w);
      }
    }
    return new Image(out, image.channels(), h, w);
  }

  private static Image flip(Image image) {
    final int w = image.width();
    final float[] out = new float[image.pixels().length];
    for (int row = 0; row < image.channels() * image.height(); row++) {
      for (int x = 0; x < w; x++) {
        out[row * w + x] = image.pixels()[row * w + w - 1 - x];
      }
    }
    return new Image(out, image.channels(), image.height(), w);
  }

  /** The region {@code (top, left, h, w)} resized bilinearly to {@code outH x outW}. */
  private static Image bilinear(Image image, int top, int left, int h, int w, int outH, int outW) {
    if (outH < 1 || outW < 1) {
      throw new IllegalArgumentException(
          "resizing a " + h + "x" + w + " region to " + outH + "x" + outW + ": too small");
    }
    final float[] out = new float[image.channels() * outH * outW];
    final double sy = (double) h / outH;
    final double sx = (double) w / outW;
    for (int y = 0; y < outH; y++) {
      final double fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), h - 1);
      final int y0 = (int) fy;
      final int y1 = Math.min(y0 + 1, h - 1);
      final double dy = fy - y0;
      for (int x = 0; x < outW; x++) {
        final double fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), w - 1);
        final int x0 = (int) fx;
        final int x1 = Math.min(x0 + 1, w - 1);
        final double dx = fx - x0;
        for (int c = 0; c < image.channels(); c++) {
          final double a = image.at(c, top + y0, left + x0);
          final double b = image.at(c, top + y0, left + x1);
          final double d = image.at(c, top + y1, left + x0);
          final double e = image.at(c, top + y1, left + x1);
          out[(c * outH + y) * outW + x] =
              (float) ((a * (1 - dx) + b * dx) * (1 - dy) + (d * (1 - dx) + e * dx) * dy);
        }
      }
    }
    return new Image(out, image.channels(), outH, outW);
  }

  private static double uniform(SplittableRandom random, double low, double high) {
    return low + (high - low) * random.nextDouble();
  }

  private static void positive(int size, String what) {
    if (size < 1) {
      throw new IllegalArgumentException(what + " size " + size + ": need >= 1");
    }
  }
}
