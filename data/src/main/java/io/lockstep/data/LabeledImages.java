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

  /**
   * A class-balanced subset: classes take turns, each giving its next image in file order, until
   * {@code samples} are taken (a class that runs out drops out of the turns). The same images for
   * the same data, whatever the order of the file.
   *
   * @param samples how many images to keep; at least the count keeps them all
   * @return the subset, in the order taken
   */
  public LabeledImages subset(int samples) {
    if (samples >= count()) {
      return this;
    }
    final int[][] byClass = new int[classes][];
    final int[] sizes = new int[classes];
    for (byte label : labels) {
      sizes[label & 0xff]++;
    }
    for (int c = 0; c < classes; c++) {
      byClass[c] = new int[sizes[c]];
      sizes[c] = 0;
    }
    for (int i = 0; i < labels.length; i++) {
      final int c = labels[i] & 0xff;
      byClass[c][sizes[c]++] = i;
    }
    final int size = imageBytes();
    final byte[] chosenPixels = new byte[samples * size];
    final byte[] chosenLabels = new byte[samples];
    int taken = 0;
    for (int turn = 0; taken < samples; turn++) {
      for (int c = 0; c < classes && taken < samples; c++) {
        if (turn < byClass[c].length) {
          final int image = byClass[c][turn];
          System.arraycopy(pixels, image * size, chosenPixels, taken * size, size);
          chosenLabels[taken++] = labels[image];
        }
      }
    }
    return new LabeledImages(chosenPixels, chosenLabels, channels, height, width, classes);
  }
}
