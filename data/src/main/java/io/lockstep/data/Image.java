package io.lockstep.data;

import java.awt.image.BufferedImage;

/**
 * An image as transforms see it: channel-major ({@code [channel][row][column]}) floats, 0-255 as
 * decoded until {@link Transforms#toTensor()} scales them to [0, 1].
 *
 * @param pixels {@code channels * height * width} values, channel-major
 * @param channels channels
 * @param height rows
 * @param width columns
 */
public record Image(float[] pixels, int channels, int height, int width) {

  /** Checks the sizes agree. */
  public Image {
    if (channels < 1 || height < 1 || width < 1) {
      throw new IllegalArgumentException(
          "an image of " + channels + "x" + height + "x" + width + " has no pixels");
    }
    if (pixels.length != channels * height * width) {
      throw new IllegalArgumentException(
          pixels.length + " values for a " + channels + "x" + height + "x" + width + " image");
    }
  }

  /**
   * The red, green and blue planes of a decoded image (grey images give three equal planes).
   *
   * @param image the decoded image
   * @return its RGB planes, 0-255
   */
  public static Image fromRgb(BufferedImage image) {
    final int h = image.getHeight();
    final int w = image.getWidth();
    final int plane = h * w;
    final float[] pixels = new float[3 * plane];
    final int[] row = new int[w];
    for (int y = 0; y < h; y++) {
      image.getRGB(0, y, w, 1, row, 0, w);
      for (int x = 0; x < w; x++) {
        final int rgb = row[x];
        final int at = y * w + x;
        pixels[at] = (rgb >> 16) & 0xff;
        pixels[plane + at] = (rgb >> 8) & 0xff;
        pixels[2 * plane + at] = rgb & 0xff;
      }
    }
    return new Image(pixels, 3, h, w);
  }

  /**
   * One value.
   *
   * @param channel the channel
   * @param y the row
   * @param x the column
   * @return the value
   */
  public float at(int channel, int y, int x) {
    return pixels[(channel * height + y) * width + x];
  }
}
