package io.lockstep.worker.input;

import io.lockstep.conf.Keys;
import io.lockstep.data.LabeledImages;
import java.util.List;
import org.nd4j.linalg.api.ndarray.INDArray;

/** Decoded byte images (IDX, CIFAR-10) as normalized feature and one-hot label arrays. */
public final class Batches implements Samples {
  private final LabeledImages images;
  private final ChannelNormalization normalization;

  /**
   * Creates the batch maker.
   *
   * @param images the dataset
   * @param mean normalization mean after scaling pixels to [0, 1]: one, or one per channel
   * @param std normalization standard deviation: one, or one per channel
   * @throws io.lockstep.conf.ConfigurationException when mean or std has neither 1 value nor one
   *     per channel
   */
  public Batches(LabeledImages images, List<Double> mean, List<Double> std) {
    this.images = images;
    final double[] m = Samples.perChannel(mean, images.channels(), Keys.DATA_MEAN.name());
    final double[] s = Samples.perChannel(std, images.channels(), Keys.DATA_STD.name());
    this.normalization = new ChannelNormalization(m, s);
  }

  @Override
  public int count() {
    return images.count();
  }

  @Override
  public int label(int index) {
    return images.labels()[index] & 0xff;
  }

  /** The images carry no random transform: every epoch gives the same features. */
  @Override
  public void features(int[] indices, int epoch, float[] into) {
    final int size = images.imageBytes();
    final int plane = images.height() * images.width();
    final byte[] pixels = images.pixels();
    for (int i = 0; i < indices.length; i++) {
      normalization.apply(pixels, indices[i] * size, plane, into, i * size);
    }
  }

  @Override
  public long[] featureShape(int rows) {
    return new long[] {rows, images.channels(), images.height(), images.width()};
  }

  /**
   * Features as {@code [n, channels, height, width]}, the layout of the dataset and of the zoo's
   * models.
   *
   * @param indices the samples
   * @return (x / 255 - mean) / std per pixel
   */
  public INDArray features(int[] indices) {
    return features(indices, 0);
  }

  /**
   * Labels as one-hot {@code [n, classes]}, as wide as the dataset's classes.
   *
   * @param indices the samples
   * @return one row per sample
   */
  public INDArray labels(int[] indices) {
    return labels(indices, images.classes());
  }
}
