package io.lockstep.data;

import java.io.Serializable;

/**
 * Images as unsigned bytes, channel-major per image, with one class label each.
 *
 * @param pixels {@code count * channels * height * width} bytes
 * @param labels {@code count} class indices
 * @param channels channels per image
 * @param height image height
 * @param width image width
 * @param classes number of classes; every label is below it
 */
public record LabeledImages(
    byte[] pixels, byte[] labels, int channels, int height, int width, int classes)
    implements Serializable {

  /**
   * @return the number of images
   */
  public int count() {
    return labels.length;
  }

  /**
   * @return bytes per image
   */
  public int imageBytes() {
    return channels * height * width;
  }
}
