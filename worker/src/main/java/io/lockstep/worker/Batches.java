package io.lockstep.worker;

import io.lockstep.data.LabeledImages;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/** Turns dataset indices into normalized feature and one-hot label arrays. */
public final class Batches {
  private final LabeledImages images;
  private final float scale;
  private final float shift;

  /**
   * Creates the batch maker.
   *
   * @param images the dataset
   * @param mean normalization mean, after scaling pixels to [0, 1]
   * @param std normalization standard deviation
   */
  public Batches(LabeledImages images, double mean, double std) {
    this.images = images;
    // (x / 255 - mean) / std as one multiply-add per pixel
    this.scale = (float) (1.0 / (255.0 * std));
    this.shift = (float) (-mean / std);
  }

  /**
   * Features as {@code [n, channels, height, width]}, the layout of the dataset and of the zoo's
   * models.
   *
   * @param indices the samples
   * @return (x / 255 - mean) / std per pixel
   */
  public INDArray features(int[] indices) {
    final int size = images.imageBytes();
    final byte[] pixels = images.pixels();
    final float[] x = new float[indices.length * size];
    for (int i = 0; i < indices.length; i++) {
      final int from = indices[i] * size;
      final int to = i * size;
      for (int p = 0; p < size; p++) {
        x[to + p] = (pixels[from + p] & 0xff) * scale + shift;
      }
    }
    return Nd4j.create(
        x, new long[] {indices.length, images.channels(), images.height(), images.width()}, 'c');
  }

  /**
   * Labels as one-hot {@code [n, classes]}.
   *
   * @param indices the samples
   * @return one row per sample
   */
  public INDArray labels(int[] indices) {
    final int classes = images.classes();
    final float[] y = new float[indices.length * classes];
    for (int i = 0; i < indices.length; i++) {
      y[i * classes + (images.labels()[indices[i]] & 0xff)] = 1f;
    }
    return Nd4j.create(y, new long[] {indices.length, classes}, 'c');
  }
}
