package io.lockstep.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The seeds' transforms, against values worked out by hand. */
class TransformsTest {
  private static final SplittableRandom UNUSED = new SplittableRandom(0);

  /** A 1-channel h x w image whose pixel (y, x) is 10 * y + x. */
  private static Image ramp(int h, int w) {
    final float[] pixels = new float[h * w];
    for (int y = 0; y < h; y++) {
      for (int x = 0; x < w; x++) {
        pixels[y * w + x] = 10 * y + x;
      }
    }
    return new Image(pixels, 1, h, w);
  }

  @Test
  void resizeKeepsTheAspectRatioAndInterpolatesBilinearly() {
    final Image resized = Transforms.resize(2).apply(ramp(4, 8), UNUSED);
    assertEquals(2, resized.height());
    assertEquals(4, resized.width());
    // output pixel (0, 0) samples the input at (0.5, 0.5): the mean of 0, 1, 10, 11
    assertEquals(5.5f, resized.at(0, 0, 0), 1e-5);
    // (1, 3) samples (2.5, 6.5): the mean of 26, 27, 36, 37
    assertEquals(31.5f, resized.at(0, 1, 3), 1e-5);
    final Image tall = Transforms.resize(3).apply(ramp(9, 6), UNUSED);
    assertEquals(4, tall.height(), "9 * 3 / 6, truncated");
    assertEquals(3, tall.width());
  }

  @Test
  void centerCropRoundsItsOffsetsAndRefusesSmallImages() {
    final Image cropped = Transforms.centerCrop(2).apply(ramp(5, 4), UNUSED);
    // top = round(1.5) = 2, left = round(1.0) = 1
    assertArrayEquals(new float[] {21, 22, 31, 32}, cropped.pixels());
    final IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () -> Transforms.centerCrop(6).apply(ramp(5, 4), UNUSED));
    assertTrue(e.getMessage().contains("resize to at least 6"), e.getMessage());
  }

  @Test
  void flipMirrorsEveryRowOfEveryChannel() {
    final Image flipped = Transforms.randomHorizontalFlip(1).apply(ramp(2, 3), UNUSED);
    assertArrayEquals(new float[] {2, 1, 0, 12, 11, 10}, flipped.pixels());
    final Image kept = Transforms.randomHorizontalFlip(0).apply(ramp(2, 3), UNUSED);
    assertArrayEquals(ramp(2, 3).pixels(), kept.pixels());
  }

  @Test
  void toTensorAndNormalizeWorkPerChannel() {
    final Image rgb = new Image(new float[] {255, 0, 51, 102}, 2, 1, 2);
    final Image out =
        Transforms.compose(
                Transforms.toTensor(),
                Transforms.normalize(new double[] {0.5, 0.1}, new double[] {0.5, 0.2}))
            .apply(rgb, 0, 0, 0);
    assertArrayEquals(new float[] {1f, -1f, 0.5f, 1.5f}, out.pixels(), 1e-6f);
    assertThrows(
        IllegalArgumentException.class,
        () -> Transforms.normalize(new double[] {0.5}, new double[] {0}));
    assertThrows(
        IllegalArgumentException.class,
        () ->
            Transforms.normalize(new double[] {0.5, 0.5, 0.5}, new double[] {1, 1, 1})
                .apply(rgb, UNUSED));
  }

  @Test
  void randomResizedCropIsSeededPerImageAndEpoch() {
    final Transforms.Pipeline train =
        Transforms.compose(Transforms.randomResizedCrop(8), Transforms.randomHorizontalFlip(0.5));
    final Image source = ramp(40, 60);
    final Image a = train.apply(source, 42, 0, 7);
    assertEquals(8, a.height());
    assertEquals(8, a.width());
    assertArrayEquals(a.pixels(), train.apply(source, 42, 0, 7).pixels(), "same seed, same image");
    assertFalse(Arrays.equals(a.pixels(), train.apply(source, 42, 1, 7).pixels()), "next epoch");
    assertFalse(Arrays.equals(a.pixels(), train.apply(source, 42, 0, 8).pixels()), "next image");
    assertFalse(Arrays.equals(a.pixels(), train.apply(source, 43, 0, 7).pixels()), "other seed");
    // every output value lies within the source's range: crops never read outside the image
    for (int i = 0; i < 200; i++) {
      for (float v : train.apply(source, 1, 0, i).pixels()) {
        assertTrue(v >= 0 && v <= 10 * 39 + 59, "value " + v);
      }
    }
  }
}
